"""Contract: our OpenAI path against llama-cpp-python's OpenAI-compatible server (bundled model).

A real server, a real model, real HTTP on 127.0.0.1: completions, chat, streaming, log-probs.
"""

from __future__ import annotations

import math


def test_chat_completion(llama_service):
    r = llama_service.chat({"messages": [{"role": "system", "content": "You are a DevOps expert"},
                                         {"role": "user", "content": "Name one CI tool."}],
                            "max_tokens": 16, "temperature": 0})
    assert r["text"].strip() and r["message"]["content"] == r["text"]
    assert r["usage"]["prompt_tokens"] > 5 and 0 < r["usage"]["completion_tokens"] <= 16
    assert r["usage"]["total_tokens"] == r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"]
    assert r["finish_reason"] in ("stop", "length")
    assert r["provider"] == "openai" and r["cost"] is None  # unknown model: cost unknown


def test_legacy_completions_endpoint(llama_service):
    r = llama_service.complete({"prompt": "The capital of France is", "max_tokens": 8,
                                "temperature": 0, "api": "completions"})
    assert r["text"] and r["usage"]["completion_tokens"] > 0


def test_streaming_matches_the_final_text(llama_service):
    tokens: list[str] = []
    r = llama_service.complete({"prompt": "Count from one to five.", "max_tokens": 24,
                                "temperature": 0}, on_token=tokens.append)
    assert len(tokens) > 1
    assert "".join(tokens) == r["text"]


def test_logprobs_give_a_confidence(llama_service):
    r = llama_service.chat({"messages": [{"role": "user", "content": "Say yes."}],
                            "max_tokens": 6, "temperature": 0, "logprobs": True})
    assert r["confidence"] is not None and 0.0 < r["confidence"] <= 1.0
    r = llama_service.complete({"prompt": "Say yes.", "max_tokens": 6, "temperature": 0,
                                "api": "completions", "logprobs": True})
    assert r["confidence"] is not None and 0.0 < r["confidence"] <= 1.0
    assert not math.isnan(r["confidence"])


def test_deterministic_at_temperature_zero(llama_service):
    spec = {"prompt": "List two Linux commands.", "max_tokens": 12, "temperature": 0}
    assert llama_service.complete(dict(spec))["text"] == llama_service.complete(dict(spec))["text"]
