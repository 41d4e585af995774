"""SCRUB FIRST, CUT AFTER: every text the AI service shortens, stores or shows is scrubbed whole
before it is cut, against the fault server and a real SQLite store."""

from __future__ import annotations

import json

import pytest

from sloth_runner.errors import AIProviderError
from sloth_runner.store.ai_usage import AIUsageStore
from tests.ai.conftest import API_KEY
from tests.scrub import make_corpus


def rows(service):
    return list(reversed(AIUsageStore(service.store).logs(100)))


def chunks(secret: str, size: int = 8) -> list[str]:
    return [secret[i:i + size] for i in range(0, len(secret) - size + 1)]


def leaked(secret: str, text: str, size: int = 8) -> list[str]:
    return [c for c in chunks(secret, size) if c in text]


def rsa_key() -> tuple[str, list[str]]:
    make_corpus.R.seed(11)
    lines = [make_corpus.rand(make_corpus.B64, 64) for _ in range(26)]
    return ("-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) +
            "\n-----END RSA PRIVATE KEY-----"), lines


def test_decide_scrubs_its_context_before_cutting_it(service, server):
    key, lines = rsa_key()
    server.play("text:rollback\nThe deploy key must be rotated.")
    # the context is cut at 4,000 characters; this key starts before the cut and ends after it
    logs = "deploy step output: " + "ok " * 1150 + "\n" + key + "\nstep 7 failed"
    d = service.decide({"situation": "deploy failed", "options": ["rollback", "continue"],
                        "logs": logs})
    assert d["choice"] == "rollback"
    sent = json.dumps(server.requests[0]["body"])
    assert "-----BEGIN RSA PRIVATE KEY" not in sent
    assert [line for line in lines if line[:16] in sent] == []
    assert "[REDACTED:private_key:1]" in sent
    (row,) = rows(service)
    assert [line for line in lines if line[:16] in row["prompt"]] == []


def test_provider_error_text_is_scrubbed_whole_before_it_is_cut(service, server):
    foreign = "sk-proj-" + "Zq8Lm2Xv9Kp4Rt7Wn3Bc6Hd1"  # 32 characters
    # each key starts 22 characters before the 300th character of the provider's message
    for key in (API_KEY, foreign):
        message = "Incorrect API key provided: " + "x" * (300 - 22 - 29) + " " + key + \
            ". You can find your API key at https://platform.example.com/account/api-keys."
        assert message.index(key) == 300 - 22
        server.play(f"error:401:{message}")
        with pytest.raises(AIProviderError) as err:
            service.complete("hello")
        text = str(err.value)
        assert leaked(key, text) == [], text
        assert "check the API key" in text and "HTTP 401" in text
        assert len(text) < 600  # still cut, after scrubbing
    for row in rows(service):
        assert leaked(API_KEY, row["error"]) == [] and leaked(foreign, row["error"]) == []


def test_the_cause_of_a_provider_error_is_kept_and_scrubbed(service, server):
    import openai

    server.play(f"error:401:Incorrect API key provided: {API_KEY}")
    with pytest.raises(AIProviderError) as err:
        service.complete("hello")
    cause = err.value.__cause__
    assert isinstance(cause, openai.AuthenticationError)  # `raise ... from exc`, not from None
    assert leaked(API_KEY, str(cause)) == []  # a --debug traceback shows it: scrubbed too


def test_cache_stores_scrubbed_responses_and_a_hit_still_makes_sense(service, server):
    service.configure({"cache": True})
    server.reply = ("Rotate [REDACTED:aws_access_key:1] now; the new one is AKIAZZZZYYYYXXXXWWWW "
                    "and ops@example.com gets the password=hunter2hunter2")
    spec = {"prompt": "What do I do about AKIAIOSFODNN7EXAMPLE?", "temperature": 0}
    first = service.complete(spec)
    assert first["cached"] is False
    stored = service.store.query("SELECT response_json FROM ai_cache")[0][0]
    for secret in ("AKIAZZZZYYYYXXXXWWWW", "ops@example.com", "hunter2hunter2",
                   "AKIAIOSFODNN7EXAMPLE"):
        assert secret not in stored
    second = service.complete(spec)
    assert len(server.requests) == 1 and second["cached"] is True
    assert second["text"] == ("Rotate [REDACTED:aws_access_key:1] now; the new one is "
                              "[REDACTED:aws_access_key] and [REDACTED:email] gets the "
                              "password=[REDACTED:secret_assignment]")
    assert second["usage"] == first["usage"] and second["model"] == first["model"]
    # the prompt's placeholder still means this run's value; masks are not restored
    restored = service.scrubber.restore(second["text"])
    assert restored.startswith("Rotate AKIAIOSFODNN7EXAMPLE now") and "[REDACTED:email]" in restored


def test_stored_call_log_never_holds_a_secret_the_model_wrote(service, server):
    server.reply = "use password=hunter2hunter2 for now"
    service.complete("hello")
    (row,) = rows(service)
    assert "hunter2hunter2" not in row["response"]
