"""Errors backends raise. The wrapper retries `RetryableError` and never retries `FatalModelError`."""

from __future__ import annotations


class ModelError(Exception):
    """Base class for every error from the model layer."""


class RetryableError(ModelError):
    """Transient: rate limit, server error, timeout, dropped connection, malformed response.

    `retry_after` is the server's Retry-After hint in seconds, when it gave one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status

    @property
    def overloaded(self) -> bool:
        """The server says it has too much to do (429, 503) or did not answer in time: send less."""
        return self.status in (429, 503)


class ModelTimeoutError(RetryableError):
    """The call got no answer within its timeout (a slow or overloaded server)."""

    @property
    def overloaded(self) -> bool:
        return True


class FatalModelError(ModelError):
    """Retrying cannot help: bad credentials, bad request, unknown model, misconfiguration."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class CacheMissError(ModelError):
    """A replay-mode cache had no entry for a call: the run is not a faithful replay."""


class NoChoiceProbsError(RetryableError):
    """The reply held none of the requested choices: a malformed verdict.

    Retryable because a sampling server may answer properly next time; the wrapper retries it under
    the model's retry policy like any transient error, and when attempts run out raises it again
    (naming the attempts) rather than a generic RetriesExhaustedError, so callers can tell "no
    verdict in the reply" from "the server kept failing".
    """
