"""The dashboard's agents page over a real broker and real agents."""

from __future__ import annotations

import re

from tests.agents.conftest import listed


def test_the_agents_page_lists_agents_with_status_and_load(agents, monkeypatch):
    from starlette.testclient import TestClient

    from sloth_runner.ui.app import Settings, make_app

    agents("a1", "--concurrency", "2")
    agents("p1", "--pool")
    monkeypatch.setenv("SLOTH_BROKER_URL", agents.env["SLOTH_BROKER_URL"])
    with TestClient(make_app(Settings()), base_url="http://127.0.0.1") as client:
        page = client.get("/agents").text
    rows = {name: status for status, name in
            re.findall(r'<tr class="agent status-(\w+)" data-agent="(\w+)">', page)}
    assert rows == {"a1": "up", "p1": "up"}
    a1 = re.search(r'data-agent="a1">(.*?)</tr>', page, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", a1)
    assert cells[0] == "a1" and cells[5] == "2"  # its slots
    assert re.fullmatch(r"\d+(\.\d+)?", cells[7])  # its load average
    assert listed(agents.env)["a1"]["slots"] == 2
