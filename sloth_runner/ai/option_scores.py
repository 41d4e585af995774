"""Option log-probabilities on the local model, for `ai.decide`: for each allowed option, the
log-probability that the model answers the decision's prompt with exactly that option's name
(followed by a newline, which ends the name: "scale" must not count as a prefix of "scale_up").

Why not ask for it through AIService.chat: a generation gives the probability of the one path
greedy decoding took, token by token, which can be a poor tokenisation of a name ("s", "cal", "e"
for "scale" costs ~25 nats where "scale" costs 6). Here each option is tokenised as the model
would write it and its tokens are evaluated in one forward pass, after the prompt. The prompt is
formatted with the GGUF's own chat template, exactly as llama-cpp-python's chat completion does
(tested), so the prompt's KV cache is shared with the generation that follows: scoring three
options costs a few dozen milliseconds on the bundled model.

Scoring is local computation with nothing sent anywhere, so it writes no usage row (the
generation that follows does). It returns None where it cannot score: another provider, a GGUF
without a chat template, a prompt too long for the context, or a model busy past the caller's
deadline. The decision then reports the answer's own probability instead (decide.py).
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sloth_runner.ai.types import CallContext


def score(service: Any, provider: str | None, messages: list[dict[str, str]],
          options: list[str], ctx: CallContext | None = None) -> list[float] | None:
    """Sum of the log-probs of each option's tokens given `messages` (as they will be sent, i.e.
    already scrubbed), in the order of `options`; None where options cannot be scored."""
    settings = service.settings(provider)
    if settings.provider != "local":
        return None
    from sloth_runner.ai.providers.local import load_model

    local = service.provider(settings)
    # The instance with all logits kept: the one decisions already use (they ask for log-probs).
    llama, lock = load_model(local.path, logits_all=True, device=settings.device,
                             threads=settings.threads, context=settings.context_size,
                             notice=local.notice)
    prompt = _prompt_tokens(llama, messages)
    if prompt is None or not prompt:
        return None
    wait = -1.0
    if ctx is not None and ctx.deadline is not None:
        wait = max(0.0, ctx.deadline - time.monotonic())
    if not lock.acquire(timeout=wait):
        return None  # the generation that follows waits for the model and reports the timeout
    try:
        return [_score_one(llama, prompt, _tokens(llama, option + "\n")) for option in options]
    except (ValueError, RuntimeError):  # e.g. the prompt does not fit the context: the
        return None                     # generation reports it, with the provider's words
    finally:
        lock.release()


def _tokens(llama: Any, text: str) -> list[int]:
    return list(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def _prompt_tokens(llama: Any, messages: list[dict[str, str]]) -> list[int] | None:
    """The tokens llama-cpp-python's chat completion evaluates for `messages` when the GGUF
    carries a chat template (its default handler then is this same Jinja formatter)."""
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    from llama_cpp import llama_chat_format

    eos_id, bos_id = llama.token_eos(), llama.token_bos()
    eos = llama.detokenize([eos_id], special=True).decode("utf-8", "replace") \
        if eos_id != -1 else ""
    bos = llama.detokenize([bos_id], special=True).decode("utf-8", "replace") \
        if bos_id != -1 else ""
    formatter = llama_chat_format.Jinja2ChatFormatter(template=template, eos_token=eos,
                                                      bos_token=bos, stop_token_ids=[eos_id])
    chat: Any = messages  # plain role/content dicts, as the chat completion takes them
    formatted = formatter(messages=chat)
    return list(llama.tokenize(formatted.prompt.encode("utf-8"),
                               add_bos=not formatted.added_special, special=True))


def _score_one(llama: Any, prompt: list[int], option: list[int]) -> float:
    """log P(option | prompt). Keeps the KV cache of what the model already holds in common
    with prompt + option, but re-evaluates at least the prompt's last token, so that every
    logit read comes from this evaluation or from an identical prefix."""
    import numpy as np

    sequence = prompt + option
    held = llama.input_ids[:llama.n_tokens]
    common = 0
    for have, want in zip(held, sequence, strict=False):
        if have != want:
            break
        common += 1
    keep = min(common, len(prompt) - 1)
    llama.n_tokens = keep  # eval() drops the cache past n_tokens before it evaluates
    llama.eval(sequence[keep:])
    logits = np.asarray(llama.scores[len(prompt) - 1:len(sequence) - 1], dtype=np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
    return float(sum(log_probs[i, token] for i, token in enumerate(option)))
