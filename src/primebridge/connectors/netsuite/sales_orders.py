"""NetSuite as a ``SalesOrderSystem``: read orders, find changed ones, write the Amazon ids back."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

import structlog

from primebridge.config import NetSuiteConfig
from primebridge.connectors.netsuite import mapping
from primebridge.connectors.netsuite.rest import NetSuiteRest
from primebridge.connectors.netsuite.suiteql import (
    ISO_OUTPUT_FORMAT,
    parse_iso_output,
    sql_literal,
    sql_timestamp,
)
from primebridge.domain.errors import ConfigError, PermanentError, Rejected
from primebridge.domain.model import SalesOrder

log = structlog.get_logger()

ISO_CURRENCY = re.compile(r"^[A-Z]{3}$")


def changed_orders_query(since: datetime, *, exclude_user: str | None = None, tz: tzinfo = UTC) -> str:
    """The polling query of reference §3.3.

    ``>=`` and not ``>``: changes in the same second as the watermark are read again rather than
    lost (the flow is idempotent). ``TO_CHAR`` gives the change time with seconds in a fixed format;
    a bare datetime column comes back in the user's date preference, often without the time.
    ``lastmodifiedby`` (the employee who saved last) excludes our own writes so they do not echo
    back as changes; that column name comes from the Records Catalog and is unconfirmed [U].
    """
    query = (
        f"SELECT t.id AS id, TO_CHAR(t.lastmodifieddate, {sql_literal(ISO_OUTPUT_FORMAT)}) AS lastmodified "
        f"FROM transaction t WHERE t.type = {sql_literal('SalesOrd')} "
        f"AND t.lastmodifieddate >= {sql_timestamp(since, tz)}"
    )
    if exclude_user is not None:
        query += f" AND (t.lastmodifiedby IS NULL OR t.lastmodifiedby <> {int(exclude_user)})"
    return query + " ORDER BY t.lastmodifieddate, t.id"


class NetSuiteSalesOrders:
    """``SalesOrderSystem`` over the REST record service and SuiteQL.

    ``server_timezone`` is the zone SuiteQL compares and prints ``lastmodifieddate`` in; reference
    §3.3 leaves it open (user/company preference vs UTC), so it is a parameter, UTC by default.
    """

    name = "netsuite"

    def __init__(self, rest: NetSuiteRest, cfg: NetSuiteConfig, *, server_timezone: tzinfo = UTC) -> None:
        self.rest = rest
        self.cfg = cfg
        self.fields = cfg.fields
        self._tz = server_timezone
        user = cfg.integration_user_id
        if user is not None and not user.strip().isdigit():
            raise ConfigError("netsuite.integration_user_id must be a NetSuite internal id (digits), "
                              f"not {user!r}")
        self._integration_user = user.strip() if user is not None else None
        self._currencies: dict[str, str] = {}
        self._currency_lock = threading.Lock()

    # -- reading -------------------------------------------------------------------------------------

    def _currency_code(self, record: dict[str, Any]) -> str:
        """NetSuite sends a currency *reference* whose name is the record's name ("USA", "British
        pound", "Euro" in many accounts), not the ISO code, and "USA" even looks like one. The code is
        the currency record's ``symbol``: looked up once per id and cached for the process."""
        ref = record.get("currency")
        currency_id = mapping.ref_id(ref)
        if currency_id is None:
            raise Rejected(f"NetSuite salesOrder {record.get('id')}: no currency", code="BadNetSuiteData")
        with self._currency_lock:
            cached = self._currencies.get(currency_id)
        if cached is not None:
            return cached
        currency = self.rest.get("currency", currency_id, expand_sub_resources=False)
        if currency is None:
            raise PermanentError(f"NetSuite currency {currency_id} of salesOrder {record.get('id')} "
                                 "does not exist")
        symbol = (mapping.text(currency.get("symbol")) or "").upper()
        if not ISO_CURRENCY.match(symbol):
            raise PermanentError(f"NetSuite currency {currency_id} ({mapping.ref_name(ref)}) has no ISO code "
                                 f"in its symbol field: {currency.get('symbol')!r}")
        with self._currency_lock:
            self._currencies[currency_id] = symbol
        return symbol

    def read_order(self, order_id: str) -> SalesOrder | None:
        record = self.rest.get("salesOrder", order_id, expand_sub_resources=True)
        if record is None:
            return None
        return mapping.to_sales_order(record, currency=self._currency_code(record), fields=self.fields)

    def changed_order_ids(self, since: datetime) -> Iterator[tuple[str, datetime]]:
        query = changed_orders_query(since, exclude_user=self._integration_user, tz=self._tz)
        for row in self.rest.suiteql(query, page_size=self.cfg.page_size):
            order_id, changed = row.get("id"), row.get("lastmodified")
            if order_id in (None, "") or not isinstance(changed, str):
                raise PermanentError(f"SuiteQL changed-orders row lacks id or lastmodified: {row}")
            yield str(order_id), parse_iso_output(changed, self._tz)

    # -- writing -------------------------------------------------------------------------------------

    def write_amazon_ids(self, order: SalesOrder, amazon_order_id: str, line_ids: Mapping[str, str]) -> None:
        """One PATCH of the body field and the changed line columns; nothing when all are set.

        The ``item`` sublist is keyed by ``line``: without ``?replace=item`` NetSuite updates the
        listed lines and leaves the others alone (reference §2.3), so only the lines that change are
        sent. The decision is taken from ``order``, the snapshot the flow just read.
        """
        known = {line.line_id: line for line in order.lines}
        unknown = sorted(set(line_ids) - set(known))
        if unknown:
            raise Rejected(f"NetSuite salesOrder {order.order_id} has no line {', '.join(unknown)}",
                           code="UnknownLine")
        body: dict[str, Any] = {}
        if order.amazon_order_id != amazon_order_id:
            body[self.fields.amazon_order_field] = amazon_order_id
        lines = [
            {"line": int(line_id) if line_id.isdigit() else line_id, self.fields.amazon_line_field: value}
            for line_id, value in sorted(line_ids.items()) if known[line_id].amazon_line_id != value
        ]
        if lines:
            body["item"] = {"items": lines}
        if not body:
            log.debug("netsuite.amazon_ids_unchanged", order_id=order.order_id)
            return
        self.rest.patch("salesOrder", order.order_id, body)
        log.info("netsuite.amazon_ids_written", order_id=order.order_id, lines=len(lines))
