"""Correlation ids of the work in progress, carried by contextvars.

The worker sets them when it starts a job, the connectors' audit hook reads them, so an API call
is filed under its order without every client call passing ids along.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Correlation:
    oms: str | None = None
    oms_order_id: str | None = None
    amazon_order_id: str | None = None
    job_id: int | None = None
    message_id: int | None = None


_EMPTY = Correlation()
_current: ContextVar[Correlation] = ContextVar("primebridge_correlation", default=_EMPTY)


def current() -> Correlation:
    return _current.get()


@contextmanager
def correlated(**ids: object) -> Iterator[Correlation]:
    token = _current.set(replace(_current.get(), **ids))  # type: ignore[arg-type]
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def add(**ids: object) -> None:
    """Add ids learnt midway (the Amazon order id after ``createOrder``) to the current context."""
    _current.set(replace(_current.get(), **ids))  # type: ignore[arg-type]
