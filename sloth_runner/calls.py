"""What worker processes may ask of the run they belong to: the AI service, and scrubbing.

An AI call that would go over the network is refused here under `--sandbox` without
`--allow net`, so the check holds for tasks in this process and in workers alike.

AI calls are answered here, in the parent, so a run has one scrubber (placeholders agree
between a prompt and `ai.restore`), one budget, one rate limiter and one loaded model, however
many workers call. Each handler takes (method, args, progress) and returns plain values.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sloth_runner.running import Run

_CALLS = ("complete", "chat", "decide", "generate_code")


def handlers_for(run: Run) -> dict[str, Callable[..., Any]]:
    def ai(method: str, args: dict[str, Any], progress: Callable[[Any], None] | None) -> Any:
        from sloth_runner.ai.client import CallContext
        from sloth_runner.ai.errors import AIDeadline
        from sloth_runner.engine.model import TaskTimeout

        service = run.ai
        if method in _CALLS:
            _require_net(run, service, method, args.get("provider"))
            call = CallContext(run.run_id, args.get("workflow"), args.get("task"),
                               args.get("deadline"), args.get("attempt") or 1)
            try:
                return service.request(method, args["spec"], call, progress,
                                       args.get("provider"))
            except AIDeadline as exc:  # the task's deadline, not the provider's fault
                raise TaskTimeout() from exc
        if method == "configure":
            service.configure(args["values"])
            return True
        if method == "sanitize":
            opts = args.get("options") or {}
            scrubber = service.scrubber.derive(
                opts.get("detectors", "all"), opts.get("allow") or [], opts.get("replacement"),
                opts.get("remove_patterns") or [])
            clean, findings = scrubber.scrub(args["text"])
            return [clean, [{"type": f.type, "start": f.start + 1, "finish": f.end}
                            for f in findings]]
        if method == "restore":
            return str(service.scrubber.restore(args["text"]))
        if method == "usage_stats":
            return service.usage().stats()
        if method == "analyze_patterns":
            return service.analyze_patterns(args.get("spec") or {})
        if method == "predict_failure":
            return service.predict_failure(args.get("task"), args.get("options") or {})
        raise ValueError(f"the AI service has no call '{method}'")

    derived: dict[tuple[str, ...], Any] = {}

    def run_service(method: str, args: dict[str, Any],
                    progress: Callable[[Any], None] | None) -> Any:
        if method == "scrub":  # for a worker: the run's placeholders, the run's known secrets
            detectors = args.get("detectors")
            if detectors is None:
                return run.scrub(str(args["text"]))
            key = tuple(detectors)  # a narrower scrubber (state values), same placeholders
            if key not in derived:
                derived[key] = run.scrubber.derive(list(key))
            return derived[key].scrub(str(args["text"]))[0]
        raise ValueError(f"the run has no call '{method}'")

    return {"ai": ai, "run": run_service}


def _require_net(run: Run, service: Any, method: str, provider: str | None) -> None:
    """Under --sandbox an AI call over HTTP (any OpenAI-compatible server) needs `net`; the
    local provider runs in this process. Configuring a base_url is fine: the call is refused."""
    if run.grants.allows("net"):
        return
    settings = service.settings(provider)
    if settings.provider == "local":
        return
    from urllib.parse import urlsplit

    host = urlsplit(settings.base_url or "https://api.openai.com").hostname or "?"
    run.grants.require("net", f"ai.{method} through the {settings.provider} provider "
                              f"({host})")
