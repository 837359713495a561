"""One concurrency limit per NetSuite account and process.

NetSuite's governance is a cap on *concurrent* requests, shared by every REST, SOAP and RESTlet
caller of the account (as low as 5 slots; reference §4.3). Each worker builds its own connector, so
the semaphore cannot live in a connector instance: the factory takes it from this module-level
registry, keyed by the account's REST base URL (one-to-one with the account id, and also set when
only ``base_url`` is configured). ``NetSuiteRest`` itself receives the semaphore explicitly, which
keeps it testable with a private one.

A process has one configuration, so one limit per account. Should a connector be built with another
limit for the same account (a reloaded configuration, tests reusing a port), the newer limit wins
for connectors built from then on, with a warning: refusing would break a reload, and the old
connectors are on their way out.
"""

from __future__ import annotations

import threading

import structlog

from primebridge.domain.errors import ConfigError

log = structlog.get_logger()

_lock = threading.Lock()
_semaphores: dict[str, tuple[int, threading.BoundedSemaphore]] = {}


def shared_semaphore(account_key: str, limit: int) -> threading.BoundedSemaphore:
    """The process-wide semaphore of one account (``account_key``: base URL or account id)."""
    if limit < 1:
        raise ConfigError("netsuite.concurrency must be at least 1")
    key = account_key.strip().lower().rstrip("/")
    with _lock:
        known = _semaphores.get(key)
        if known is not None and known[0] != limit:
            log.warning("netsuite.concurrency_changed", account=key, old=known[0], new=limit)
            known = None
        if known is None:
            known = _semaphores[key] = (limit, threading.BoundedSemaphore(limit))
        return known[1]
