"""Code hygiene of the AI package: no import circle, foreign exceptions mapped at the boundary
with their cause kept, error flags as real attributes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sloth_runner.errors import AIConnectionError, AIProviderError

AI = Path(__file__).resolve().parents[2] / "sloth_runner" / "ai"


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


@pytest.mark.parametrize("module", ["decide.py", "codegen.py"])
def test_decide_and_codegen_never_import_the_client(module):
    # not even for type checking: they are given a small protocol (ai/protocols.py)
    assert not [m for m in imported_modules(AI / module) if "ai.client" in m]


def test_no_attributes_are_patched_onto_exceptions():
    for path in AI.rglob("*.py"):
        text = path.read_text()
        assert "type: ignore[attr-defined]" not in text, path
        assert "from None" not in text, path  # keep the cause: `raise ... from exc`


def test_a_broken_stream_says_whether_text_was_delivered(service, server):
    from sloth_runner.ai.errors import AIStreamBroken

    server.reply = "one two three four five"
    server.play("cut")
    with pytest.raises(AIStreamBroken) as err:
        service.complete("count", on_token=lambda t: None)
    assert isinstance(err.value, AIConnectionError) and err.value.partial is True
    assert err.value.retryable is False  # text was shown: a retry would repeat it


def test_connection_errors_keep_their_cause(service):
    import openai

    service.configure({"base_url": "http://127.0.0.1:9/v1", "retry_attempts": 0})
    with pytest.raises(AIConnectionError) as err:
        service.complete("hello")
    assert isinstance(err.value.__cause__, openai.APIConnectionError)


def test_local_provider_errors_keep_their_cause():
    from tests.ai.conftest import make_service

    local = make_service({"provider": "local", "retry_attempts": 0, "context_size": 256})
    with pytest.raises(AIProviderError) as err:
        local.complete({"prompt": "word " * 400, "max_tokens": 4})
    assert isinstance(err.value.__cause__, ValueError)
    assert "context" in str(err.value)
