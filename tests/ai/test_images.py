"""Images in chat messages: the request a vision-capable server receives (the fault server),
the limits, and the text-only bundled model's refusal."""

from __future__ import annotations

import base64

import pytest

from sloth_runner.errors import ConfigError
from sloth_runner.store.ai_usage import AIUsageStore
from tests.conftest import cli_json, tasks_by_name

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGA"
                       "hKmMIQAAAABJRU5ErkJggg==")


def test_an_image_is_sent_as_an_image_url_part_and_logged_as_a_label(service, server, tmp_path):
    image = tmp_path / "dash.png"
    image.write_bytes(PNG)
    answer = service.chat({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is wrong here? password=hunter2-SECRET-42"},
        {"type": "image", "path": str(image)},
        {"type": "image", "url": "https://example.com/graph.png"}]}]})
    assert answer["text"] == "reply text"
    (sent,) = server.requests
    content = sent["body"]["messages"][0]["content"]
    assert content[1] == {"type": "image_url", "image_url": {
        "url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}
    assert content[2] == {"type": "image_url",
                          "image_url": {"url": "https://example.com/graph.png"}}
    assert content[0]["type"] == "text" and "hunter2-SECRET-42" not in content[0]["text"]
    (row,) = AIUsageStore(service.store).logs(1)
    assert f"[image: dash.png, {len(PNG)} bytes]" in row["prompt"]
    assert "base64" not in row["prompt"]


@pytest.mark.parametrize("part, field, says", [
    ({"type": "image", "path": "/nonexistent/x.png"}, "content[1].path", "cannot read"),
    ({"type": "image", "data": "GIF89a", "mime": "image/tiff"}, "content[1].mime", "must be"),
    ({"type": "image", "url": "file:///etc/passwd"}, "content[1].url", "http(s)"),
    ({"type": "video", "path": "x"}, "content[1]", "must be"),
])
def test_bad_image_parts_are_clear_errors_and_nothing_is_sent(service, server, part, field,
                                                                says):
    with pytest.raises(ConfigError) as err:
        service.chat({"messages": [{"role": "user", "content": [part]}]})
    assert f"chat.messages[1].{field}" in str(err.value) and says in str(err.value)
    assert server.requests == []


def test_an_image_too_big_is_refused(service, server, tmp_path, monkeypatch):
    from sloth_runner.ai import images

    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 10)
    big = tmp_path / "big.png"
    big.write_bytes(PNG)
    with pytest.raises(ConfigError) as err:
        service.chat({"messages": [{"role": "user", "content": [
            {"type": "image", "path": str(big)}]}]})
    assert "images are capped" in str(err.value) and server.requests == []


def test_the_text_only_bundled_model_refuses_an_image_naming_itself(workflow_file, tmp_path):
    image = tmp_path / "dash.png"
    image.write_bytes(PNG)
    path = workflow_file(f'''
        task("look"):command(function()
            local r = ai.chat({{messages = {{{{role = "user", content = {{
                {{type = "text", text = "what is this?"}},
                {{type = "image", path = "{image}"}}}}}}}}}})
            return true, r.text
        end):build()
    ''')
    code, doc = cli_json("run", "-f", path)
    error = tasks_by_name(doc)["look"]["error"]
    assert code == 1
    assert "local model SmolLM2" in error and "reads text only" in error
