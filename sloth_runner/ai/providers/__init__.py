"""AI providers: one small base class; OpenAI-compatible endpoints are configuration, not classes."""
