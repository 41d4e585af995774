"""Secret and PII scrubbing: a plain service used by the AI module, logs, and `ai.sanitize_data`."""

from sloth_runner.scrub.engine import Finding, PatternTimeout, Scrubber, clip

__all__ = ["Finding", "PatternTimeout", "Scrubber", "clip"]
