"""Every dashboard page over a home filled by real runs (tests/ui/conftest.py)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from tests.ui.conftest import SECRET


def run_ids(client, **filters) -> dict[str, str]:
    """{run id: file name} of the runs page's rows, with these filters."""
    html = client.get("/", params=filters).text
    return {m[0]: m[1].rsplit("/", 1)[-1] for m in re.findall(
        r'data-run="(\w+)".*?<td class="file" title="([^"]+)"', html, re.S)}


def run_of(client, name: str) -> str:
    return next(i for i, f in run_ids(client).items() if f == name)


def svg(html: str, cls: str) -> ET.Element:
    found = re.search(rf'<div class="svg {cls}">(.*?)</div>', html, re.S)
    assert found, f"no {cls} on the page"
    return ET.fromstring(found.group(1))


def test_runs_lists_every_run_newest_first_and_filters(client):
    listed = run_ids(client)
    assert sorted(listed.values()) == ["ai.lua", "big.lua", "flaky.lua", "ok.lua"]
    assert list(listed.values())[0] == "big.lua"  # the last one run
    assert set(run_ids(client, status="failed").values()) == {"flaky.lua"}
    assert set(run_ids(client, ai="1").values()) == {"ai.lua"}
    assert set(run_ids(client, file="ok").values()) == {"ok.lua"}
    assert run_ids(client, since="1h") == listed
    rows = client.get("/", params={"rows": "1", "status": "success"}).text
    assert "<table" not in rows and rows.count("data-run=") == 3  # the live fragment
    bad = client.get("/", params={"since": "yesterday-ish"})
    assert bad.status_code == 400 and "since:" in bad.text


def test_a_run_shows_its_dag_timeline_tasks_and_how_to_run_it_again(client, filled_home):
    page = client.get(f"/runs/{run_of(client, 'flaky.lua')}")
    assert page.status_code == 200
    dag = svg(page.text, "dag")
    nodes = {n.get("data-task"): n.get("data-status") for n in dag.iter()
             if n.get("data-task")}
    assert nodes == {"flaky": "success", "broken": "failed", "after_broken": "skipped"}
    edges = {(e.get("data-from"), e.get("data-to")) for e in dag.iter() if e.get("data-from")}
    assert edges == {("broken", "after_broken")}  # as the run recorded its graph
    timeline = svg(page.text, "gantt")
    bars = [(b.get("data-task"), b.get("data-attempt")) for b in timeline.iter()
            if b.get("data-attempt")]
    assert sorted(bars) == [("after_broken", "0"), ("broken", "1"), ("flaky", "1"),
                            ("flaky", "2")] or sorted(bars) == [("broken", "1"), ("flaky", "1"),
                                                                ("flaky", "2")]
    assert f"sloth-runner run -f {filled_home[1]['flaky.lua']}" in page.text
    assert '/rerun"' in page.text and 'name="csrf"' in page.text


def test_an_attempt_shows_its_output_scrubbed_and_the_whole_output_downloads(client):
    run_id = run_of(client, "ok.lua")
    page = client.get(f"/runs/{run_id}").text
    build = re.search(rf'href="[^"]*(/runs/{run_id}/attempts/\d+)">build<', page).group(1)
    attempt = client.get(build).text
    assert "building" in attempt and SECRET not in attempt and "REDACTED" in attempt

    big = run_of(client, "big.lua")
    link = re.search(rf'href="[^"]*(/runs/{big}/attempts/\d+)">loud<',
                     client.get(f"/runs/{big}").text).group(1)
    shown = client.get(link).text
    assert "the end shown" in shown and len(shown) < 200_000  # the tail only
    whole = client.get(link + "/stdout.txt")
    assert whole.status_code == 200
    assert whole.headers["content-disposition"].startswith("attachment")
    assert len(whole.content) == 1_500_000 + len("\nthe end\n")
    assert whole.text.endswith("the end\n")


def test_ai_calls_spend_analytics_agents_and_schedules_render(client):
    ai = client.get("/ai").text
    assert 'data-operation="complete"' in ai and "local" in ai
    assert "Say hello." in ai  # log_prompts was on: the prompt is shown (scrubbed)
    run_page = client.get(f"/runs/{run_of(client, 'ai.lua')}").text
    assert "<h2>AI calls</h2>" in run_page
    decision = re.search(r'<tr class="decision[^"]*" data-task="ask">(.*?)</tr>', run_page, re.S)
    assert decision and "restart, wait" in decision.group(1)  # the options, and what it chose
    assert re.search(r"<strong>choice</strong>: (restart|wait)", decision.group(1))
    spend = client.get("/spend")
    assert spend.status_code == 200 and "SmolLM2" in spend.text
    analytics = client.get("/analytics", params={"since": "7d"})
    assert analytics.status_code == 200 and 'id="by-hour"' in analytics.text
    for chart in ("durations", "rate", "by-host", "by-hour", "retries"):
        ET.fromstring(re.search(rf'id="{chart}">(.*?)</div>', analytics.text, re.S).group(1))
    agents = client.get("/agents")
    assert agents.status_code == 200 and "broker" in agents.text  # none configured: how to
    assert client.get("/schedules").status_code == 200


def test_unknown_things_are_404_pages_and_bad_paths_are_never_served(client):
    for path in ("/runs/nope", "/runs/nope/attempts/1", "/nowhere", "/runs/nope/attempts/1/x.txt"):
        page = client.get(path)
        assert page.status_code == 404, path
        assert "<h1>" in page.text and "Traceback" not in page.text
    from sloth_runner.ui.pages import _spool_file

    assert _spool_file("/etc/passwd") is None
    assert _spool_file("../../etc/passwd") is None


def test_without_a_token_only_this_machines_names_are_answered(client):
    rebound = client.get("/", headers={"host": "evil.example"})
    assert rebound.status_code == 421 and 'name="csrf"' not in rebound.text
    assert client.get("/", headers={"host": "localhost:8080"}).status_code == 200


def test_every_response_carries_the_security_headers(client):
    for path in ("/", "/static/app.css", "/runs/nope"):
        headers = client.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"


def test_a_token_guards_every_page_and_becomes_a_cookie(home):
    from starlette.testclient import TestClient

    from sloth_runner.ui.app import Settings, make_app

    with TestClient(make_app(Settings(token="s3cret-token")), base_url="http://127.0.0.1") as c:
        assert c.get("/").status_code == 401
        assert c.get("/?token=wrong").status_code == 401
        first = c.get("/?token=s3cret-token", follow_redirects=False)
        assert first.status_code == 303 and "token" not in first.headers["location"]
        assert c.get("/").status_code == 200  # the cookie from now on
        assert c.get("/", headers={"authorization": "Bearer s3cret-token"}).status_code == 200


def test_actions_need_the_csrf_token_and_are_gone_when_read_only(client, home):
    run_id = run_of(client, "ok.lua")
    refused = client.post(f"/runs/{run_id}/rerun", data={"csrf": "forged"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    foreign = client.post(f"/runs/{run_id}/rerun", headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403
    from starlette.testclient import TestClient

    from sloth_runner.ui.app import Settings, make_app

    with TestClient(make_app(Settings(read_only=True)), base_url="http://127.0.0.1") as c:
        page = c.get(f"/runs/{run_id}").text
        assert 'name="csrf"' not in page
        assert c.post(f"/runs/{run_id}/rerun").status_code == 403


def test_re_run_and_re_run_failed_start_real_runs(client):
    from tests.conftest import poll

    flaky = run_of(client, "flaky.lua")
    csrf = re.search(r'name="csrf" value="(\w+)"', client.get(f"/runs/{flaky}").text).group(1)
    again = client.post(f"/runs/{flaky}/retry", data={"csrf": csrf}, follow_redirects=False)
    assert again.status_code == 303
    new_id = again.headers["location"].rsplit("/", 1)[-1]
    assert new_id != flaky

    def finished() -> dict | None:
        page = client.get(f"/runs/{new_id}").text
        return None if 'data-status="running"' in page else page

    assert poll(finished, 30)
    page = client.get(f"/runs/{new_id}").text
    tasks = set(re.findall(r'<tr class="task status-\w+" data-task="(\w+)"', page))
    assert tasks == {"broken", "after_broken"}  # only what did not succeed (and its deps)
    ok = run_of(client, "ok.lua")
    done = client.post(f"/runs/{ok}/retry", data={"csrf": csrf}, follow_redirects=False)
    assert done.status_code == 409 and "Nothing failed" in done.text
