"""Secret and PII scrubbing: a plain service used by the AI module, logs, and `ai.sanitize_data`."""

from sloth_runner.scrub.engine import Finding, Scrubber

__all__ = ["Finding", "Scrubber"]
