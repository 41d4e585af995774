"""`sloth-runner ui` as a user starts it, and `analyze --html`."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

from tests.conftest import cli
from tests.ui.conftest import UIServer


def status_of(url: str, opener: urllib.request.OpenerDirector | None = None) -> int:
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_on_another_address_a_token_is_made_printed_once_and_required(home):
    server = UIServer(str(home), "--host", "0.0.0.0")
    try:
        assert server.first_line.startswith("dashboard: http://127.0.0.1:")
        assert "?token=" in server.first_line and "shown once" in server.first_line
        token = server.first_line.split("?token=")[1].split()[0]
        assert status_of(server.url + "/") == 401
        import http.cookiejar

        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        assert status_of(f"{server.url}/?token={token}", browser) == 200  # and a cookie
        assert status_of(server.url + "/ai", browser) == 200
        assert status_of(server.url + "/static/app.css") == 200  # assets need no token
    finally:
        server.stop()


def test_a_port_in_use_is_a_clear_error(home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = cli("ui", "--port", str(port))
    assert proc.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr


def test_analyze_html_writes_one_self_contained_file(home, tmp_path):
    out = tmp_path / "report.html"
    proc = cli("analyze", "--since", "7d", "--html", str(out))
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert html.count("<svg") >= 5 and "<style>" in html
    assert "src=" not in html and "/static/" not in html  # nothing to fetch
    assert f"report: {out}" in proc.stderr


def test_server_serves_the_dashboard_and_starts_due_schedules(home, workflow_file, tmp_path):
    from tests.conftest import poll

    marker = tmp_path / "ran"
    path = workflow_file(f'task("t"):command("touch {marker}"):build()', "due.lua")
    assert cli("schedule", "add", "every-minute", "--cron", "* * * * *", "-f", path,
               "--catch-up").returncode == 0
    import sqlite3

    with sqlite3.connect(home / "sloth.db") as db:  # the server was down when it was due
        db.execute("UPDATE schedules SET next_run_at = next_run_at - 600")
    server = UIServer(str(home), command="server")
    try:
        assert status_of(server.url + "/schedules") == 200
        # caught up once by the server's loop at its first tick
        assert poll(marker.exists, 30)
    finally:
        server.stop()
        cli("schedule", "remove", "every-minute")


def test_ctrl_c_with_a_live_page_open_stops_at_once_without_a_traceback(home):
    import http.client
    import signal
    import subprocess

    server = UIServer(str(home))
    feed = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        feed.request("GET", "/live")
        response = feed.getresponse()
        assert response.status == 200
        server.proc.send_signal(signal.SIGINT)
        try:  # the stream is ended by the server, not left for the graceful-shutdown timeout
            server.proc.wait(1.5)
        except subprocess.TimeoutExpired:
            raise AssertionError("the dashboard was still running 1.5 s after Ctrl-C") from None
        output = server.proc.stdout.read() if server.proc.stdout else ""
        assert "Traceback" not in output and "CancelledError" not in output, output
    finally:
        feed.close()
        server.stop()
