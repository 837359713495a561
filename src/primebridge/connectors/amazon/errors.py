"""Buy with Prime GraphQL errors → primebridge's domain errors (which carry the retry decision).

BwP answers most failures with HTTP 200 and an ``errors`` array whose entries carry
``extensions.classification {type, code}`` (reference §2.8). The typed exceptions below subclass the
domain errors, so the runtime retries, rejects or dead-letters without knowing about BwP, while a
caller that cares (``BwpOrders``) can still catch ``NotFound`` or read ``code``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from primebridge.domain.errors import AlreadyExists, PermanentError, PrimebridgeError, Rejected, TransientError

# The one validation code that means "this order exists already" (docs/troubleshoot-order-errors):
# a retried createOrder; the caller adopts the order found by alias.
ALIAS_CONFLICT_CODE = "AliasValueAlreadyExists"


@dataclass(frozen=True, slots=True)
class GraphQLErrorInfo:
    """One entry of the ``errors`` array, reduced to what decides and explains a failure."""

    message: str
    type: str | None = None
    code: str | None = None
    path: tuple[str | int, ...] = ()

    def describe(self) -> str:
        kind = "/".join(p for p in (self.type, self.code) if p) or "unclassified"
        where = f" at {'.'.join(str(p) for p in self.path)}" if self.path else ""
        return f"{kind}{where}: {self.message}"


class BwpError(PrimebridgeError):
    """Mixin data of every BwP GraphQL error: the operation and the classification it failed with."""

    operation: str = ""
    error_type: str | None = None
    code: str | None = None
    errors: tuple[GraphQLErrorInfo, ...] = ()

    def _attach(self, operation: str, errors: Sequence[GraphQLErrorInfo], lead: GraphQLErrorInfo) -> None:
        self.operation = operation
        self.errors = tuple(errors)
        self.error_type = lead.type
        self.code = lead.code


class ThrottlingError(BwpError, TransientError):
    """BwP asks us to slow down; the docs say retry with exponential backoff."""


class InternalServerError(BwpError, TransientError):
    """A fault inside BwP; may succeed on retry."""


class ValidationError(BwpError, Rejected):
    """The input can never succeed as sent (bad SKU, missing Prime data, address...)."""


class ConflictError(BwpError, AlreadyExists):
    """An order alias is taken: for ``createOrder`` this is a retry of an order that exists already."""


class AccessDeniedError(BwpError, PermanentError):
    """Missing scope, bad target id or a token the API refuses: an operator must fix credentials."""


class NotFound(BwpError, PermanentError):
    """``ResourceNotFoundError``: the order (or other resource) does not exist."""


class UnclassifiedError(BwpError, PermanentError):
    """An error without a known classification; retrying the same request is not expected to help."""


class BadResponse(PermanentError):
    """BwP answered with something that is not the documented shape (names what is wrong)."""


_BY_TYPE: dict[str, type[BwpError]] = {
    "ThrottlingError": ThrottlingError,
    "InternalServerError": InternalServerError,
    "ValidationError": ValidationError,
    "ConflictError": ConflictError,
    # The sandbox troubleshooting page spells it the Java way.
    "ConflictException": ConflictError,
    "AccessDeniedError": AccessDeniedError,
    "ResourceNotFoundError": NotFound,
}

# When one response carries several errors, the one that changes the retry decision the most wins:
# anything retryable makes the whole call retryable, a conflict beats a plain validation error.
_PRIORITY: tuple[type[BwpError], ...] = (
    ThrottlingError, InternalServerError, ConflictError, NotFound, AccessDeniedError, ValidationError,
    UnclassifiedError,
)


def parse_errors(raw: Any) -> list[GraphQLErrorInfo]:
    """The ``errors`` array as ``GraphQLErrorInfo``; tolerant of missing parts, strict about the type."""
    if not isinstance(raw, list):
        raise BadResponse(f"BwP 'errors' is not a list but {type(raw).__name__}")
    infos: list[GraphQLErrorInfo] = []
    for entry in raw:
        if not isinstance(entry, dict):
            infos.append(GraphQLErrorInfo(message=str(entry)))
            continue
        extensions = entry.get("extensions") if isinstance(entry.get("extensions"), dict) else {}
        classification = extensions.get("classification")
        if not isinstance(classification, dict):
            classification = {}
        path = entry.get("path") if isinstance(entry.get("path"), list) else []
        infos.append(GraphQLErrorInfo(
            message=str(entry.get("message") or "no message"),
            type=_text(classification.get("type")),
            code=_text(classification.get("code")),
            path=tuple(p for p in path if isinstance(p, str | int)),
        ))
    return infos


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _class_for(info: GraphQLErrorInfo) -> type[BwpError]:
    if info.code == ALIAS_CONFLICT_CODE:
        return ConflictError
    return _BY_TYPE.get(info.type or "", UnclassifiedError)


def error_for(operation: str, errors: Sequence[GraphQLErrorInfo], *,
              retry_after: float | None = None) -> BwpError:
    """The typed exception for a response that carried ``errors`` (the caller raises it)."""
    if not errors:
        errors = [GraphQLErrorInfo(message="empty errors array")]
    classes = [_class_for(info) for info in errors]
    cls = min(classes, key=_PRIORITY.index)
    lead = errors[classes.index(cls)]
    text = "; ".join(info.describe() for info in errors)
    message = f"BwP {operation} failed: {text}"
    exc: BwpError
    if issubclass(cls, TransientError):
        exc = cls(message, retry_after=retry_after)  # type: ignore[call-arg]
    elif issubclass(cls, Rejected):
        exc = cls(message, code=lead.code)  # type: ignore[call-arg]
    else:
        exc = cls(message)
    exc._attach(operation, errors, lead)
    return exc
