"""SuiteQL paging and the few literal helpers our queries need.

SuiteQL answers at most 1000 rows per page; ``hasMore`` says whether to go on and the ``next`` link
carries the next ``offset``. Values come back as strings with lower-case keys, and every row has a
``links`` key we drop. The queries primebridge sends only embed values it produced itself (a
formatted timestamp, a validated integer id), so they are written as literals via ``sql_literal``
rather than ``params`` binding; ``sql_literal`` still escapes quotes, so a stray value cannot end the
string.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from primebridge.domain.errors import PermanentError

MAX_PAGE_SIZE = 1000
TIMESTAMP_FORMAT = "YYYY-MM-DD HH24:MI:SS"
ISO_OUTPUT_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS'


class PageSource(Protocol):
    def suiteql_page(self, query: str, *, limit: int, offset: int) -> dict[str, Any]: ...


def sql_literal(value: str | int | bool | None) -> str:
    """A SuiteQL literal: strings quoted with ``'`` doubled, integers bare, booleans ``'T'``/``'F'``."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "'T'" if value else "'F'"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"no SuiteQL literal for {type(value).__name__}")
    return "'" + value.replace("'", "''") + "'"


def sql_timestamp(moment: datetime, tz: tzinfo = UTC) -> str:
    """``TO_TIMESTAMP('2025-01-31 23:59:59', 'YYYY-MM-DD HH24:MI:SS')`` of ``moment`` seen in ``tz``
    (the zone NetSuite compares ``lastmodifieddate`` in is unconfirmed, reference §3.3)."""
    if moment.tzinfo is None:
        raise ValueError("sql_timestamp needs an aware datetime")
    local = moment.astimezone(tz).replace(microsecond=0)
    stamp = sql_literal(local.strftime("%Y-%m-%d %H:%M:%S"))
    return f"TO_TIMESTAMP({stamp}, {sql_literal(TIMESTAMP_FORMAT)})"


def parse_iso_output(value: str, tz: tzinfo = UTC) -> datetime:
    """Read a value produced by ``TO_CHAR(x, ISO_OUTPUT_FORMAT)`` back as an aware datetime."""
    try:
        parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"SuiteQL returned an unreadable timestamp {value!r}") from exc
    return parsed.replace(tzinfo=tz).astimezone(UTC)


def _next_offset(page: dict[str, Any], offset: int, limit: int) -> int:
    for link in page.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "next" and link.get("href"):
            values = parse_qs(urlsplit(str(link["href"])).query).get("offset")
            if values and values[0].isdigit():
                return int(values[0])
    return offset + limit


def suiteql(source: PageSource, query: str, *, page_size: int = MAX_PAGE_SIZE) -> Iterator[dict[str, Any]]:
    """Every row of ``query``, page by page, without the ``links`` key."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"SuiteQL page size must be 1..{MAX_PAGE_SIZE}, not {page_size}")
    offset = 0
    while True:
        page = source.suiteql_page(query, limit=page_size, offset=offset)
        items = page.get("items")
        if not isinstance(items, list):
            raise PermanentError(f"SuiteQL page at offset {offset} has no items list")
        for row in items:
            if not isinstance(row, dict):
                raise PermanentError(f"SuiteQL page at offset {offset} has a row that is not an object")
            yield {k: v for k, v in row.items() if k != "links"}
        if not page.get("hasMore"):
            return
        following = _next_offset(page, offset, page_size)
        if following <= offset or not items:
            raise PermanentError(f"SuiteQL says hasMore at offset {offset} but gives no further page")
        offset = following
