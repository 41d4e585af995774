"""Agents: Celery workers on other hosts that run delegated task attempts (see
docs/ARCHITECTURE.md, "Agents"). Nothing here is imported by a run that delegates nothing."""
