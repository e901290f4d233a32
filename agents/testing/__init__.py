"""Test infrastructure that is real, not mocked: a local OpenAI-compatible HTTP server."""

from agents.testing.server import FakeServer, p_yes

__all__ = ["FakeServer", "p_yes"]
