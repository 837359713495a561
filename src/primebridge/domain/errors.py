"""Errors that carry the retry decision with them, so the runtime needs no per-connector knowledge."""

from __future__ import annotations


class PrimebridgeError(Exception):
    """Base of every error primebridge raises on purpose."""


class Rejected(PrimebridgeError):
    """The input can never succeed as it is (invalid order, validation error): record it, do not retry."""

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TransientError(PrimebridgeError):
    """The remote side may succeed later (network, 5xx, 429, throttling): retry with backoff."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(PrimebridgeError):
    """A remote error that retrying will not fix (auth, 4xx other than 429): dead-letter at once."""


class ConfigError(PrimebridgeError):
    """The configuration is invalid; the message names the key."""


class AlreadyExists(PrimebridgeError):
    """Amazon already has an order with this alias: a retried create; adopt the existing order."""
