"""Fault tests reuse the core fixtures: the session sandbox (reset per test) and a client factory."""

from tests.core.conftest import factory, sandbox_connection

__all__ = ["factory", "sandbox_connection"]
