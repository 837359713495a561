"""OData V2 value and literal handling, shared by the SAP client, the adapter and the sandbox.

V2 "verbose" JSON does not carry types with its values: ``Edm.DateTime``/``DateTimeOffset`` are
``/Date(ms)/`` strings and ``Edm.Decimal`` is a JSON string. The parsers here turn those into
aware datetimes and ``Decimal`` and raise ``ValueError`` naming the bad value, so a caller can turn
it into a domain error with the field name attached.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

_JSON_DATE = re.compile(r"^/Date\((-?\d+)(?:[+-]\d{1,4})?\)/$")
_ISO_FRACTION = re.compile(r"^(?P<head>[^.]+)\.(?P<frac>\d+)(?P<tail>.*)$")
_LITERAL_DT = re.compile(r"^(?:datetimeoffset|datetime)'([^']*)'$")


def parse_datetime(value: object) -> datetime | None:
    """``/Date(ms)/``, ``/Date(ms+0000)/``, a ``datetimeoffset'…'`` literal or ISO 8601 → aware UTC.

    ``None`` and ``""`` mean "no date" (SAP sends ``null`` for empty dates). An ``Edm.DateTime``
    without offset is UTC by the V2 convention (SAP date-only fields come as midnight UTC).
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise ValueError(f"not an OData date: {value!r}")
    text = value.strip()
    match = _JSON_DATE.match(text)
    if match:
        # The suffix of /Date(ms+0000)/ is an offset in minutes that only says in which zone the
        # value was entered; the milliseconds always count from the UTC epoch, so it is ignored.
        try:
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(match.group(1)))
        except OverflowError:  # beyond year 9999: a bad value, not a crash without a field name
            raise ValueError(f"not an OData date (out of range): {value!r}") from None
    literal = _LITERAL_DT.match(text)
    if literal:
        text = literal.group(1)
    return _parse_iso(text, original=value)


def _parse_iso(text: str, *, original: str) -> datetime:
    iso = text.replace("%3A", ":").replace("%3a", ":")
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    fraction = _ISO_FRACTION.match(iso)
    if fraction and len(fraction.group("frac")) > 6:
        # Edm.DateTimeOffset has Precision 7 (100 ns); Python stops at microseconds.
        iso = f"{fraction.group('head')}.{fraction.group('frac')[:6]}{fraction.group('tail')}"
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"not an OData date: {original!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def format_json_datetime(value: datetime, *, offset: bool = True) -> str:
    """The V2 JSON form SAP emits: ``/Date(ms+0000)/`` for DateTimeOffset, ``/Date(ms)/`` for DateTime."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
    millis = delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
    return f"/Date({millis}+0000)/" if offset else f"/Date({millis})/"


def iso_utc(value: datetime, *, digits: int = 7) -> str:
    """``2024-01-01T10:00:00.1234560Z``: the 7-digit form SAP uses in ETags and literals."""
    aware = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    head = aware.strftime("%Y-%m-%dT%H:%M:%S")
    if digits <= 0:
        return head + "Z"
    frac = f"{aware.microsecond:06d}0"[:digits]
    return f"{head}.{frac}Z"


def datetimeoffset_literal(value: datetime) -> str:
    """A ``$filter`` literal, e.g. ``datetimeoffset'2024-01-01T00:00:00Z'`` (fraction only when needed)."""
    aware = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    text = iso_utc(aware) if aware.microsecond else iso_utc(aware, digits=0)
    return f"datetimeoffset'{text}'"


def parse_decimal(value: object) -> Decimal | None:
    """``Edm.Decimal`` arrives as a JSON string (``"17.55"``); numbers are accepted too."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a decimal: {value!r}")
    if isinstance(value, Decimal):
        return value
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"not a decimal: {value!r}")
    return result


def string_literal(value: str) -> str:
    """An ``Edm.String`` literal: single quotes, an embedded quote doubled."""
    return "'" + value.replace("'", "''") + "'"


def key_predicate(keys: Mapping[str, str]) -> str:
    """``('4711')`` for a single key, ``(SalesOrder='4711',SalesOrderItem='10')`` for a compound one.

    The values are percent-encoded (quotes kept) because they become part of the URL path.
    """
    def enc(value: str) -> str:
        return quote(string_literal(value), safe="'")

    if len(keys) == 1:
        return f"({enc(next(iter(keys.values())))})"
    return "(" + ",".join(f"{name}={enc(value)}" for name, value in keys.items()) + ")"


def entity_etag(entity: Mapping[str, object]) -> str | None:
    """The ETag in ``__metadata.etag`` (the client copies the ``ETag`` header there on single reads)."""
    meta = entity.get("__metadata")
    if isinstance(meta, Mapping):
        etag = meta.get("etag")
        if isinstance(etag, str) and etag:
            return etag
    return None


def results(value: object) -> list[dict[str, object]]:
    """An expanded to-many navigation: ``{"results": [...]}``; also tolerates a bare list or ``None``."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        if "__deferred" in value:
            return []
        value = value.get("results", [])
    if not isinstance(value, list):
        raise ValueError(f"expected a collection, got {type(value).__name__}")
    return [row for row in value if isinstance(row, dict)]
