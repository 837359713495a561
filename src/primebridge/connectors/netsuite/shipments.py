"""NetSuite as ``ShipmentDocuments``: one item fulfillment per Amazon package, its tracking, delivery
and delivery failure, and the closing or lowering of sales-order lines Amazon cancelled.

Exactly one item fulfillment per package: a transform has no upsert form (reference §2.5), so the
package id is stored in a body custom field and every create looks for it with SuiteQL first. A
retry after a crash that came between NetSuite's commit and our reading of the answer therefore
finds the fulfillment instead of making a second one. The package id also goes into ``externalId``
(unless ``use_external_id`` is off): should two workers race past the lookup, NetSuite's unique
external ids refuse the second transform ([U] for transforms), and that refusal is answered with the
first one's id.

Updates read the record first and PATCH only what differs, so a duplicate event costs one GET and
writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from primebridge.config import NetSuiteConfig
from primebridge.connectors.netsuite import fulfillments, mapping
from primebridge.connectors.netsuite.rest import NetSuiteRest
from primebridge.connectors.netsuite.suiteql import sql_literal
from primebridge.domain.errors import Rejected
from primebridge.domain.packages import LineCancellation, Shipment, Tracker

log = structlog.get_logger()


def find_shipment_query(package_id: str, package_id_field: str) -> str:
    """``package_id_field`` is a validated ``custbody…`` script id; the package id is a literal."""
    return (f"SELECT t.id AS id FROM transaction t WHERE t.type = {sql_literal('ItemShip')} "
            f"AND t.{package_id_field} = {sql_literal(package_id)} ORDER BY t.id")


class NetSuiteShipments:
    """``ShipmentDocuments`` over the REST record service and SuiteQL (shares ``NetSuiteRest``'s
    account-wide concurrency limit with every other NetSuite adapter of the process)."""

    name = "netsuite"

    def __init__(self, rest: NetSuiteRest, cfg: NetSuiteConfig) -> None:
        self.rest = rest
        self.cfg = cfg.shipments
        self._page_size = cfg.page_size

    # -- item fulfillments ---------------------------------------------------------------------------

    def find_shipment(self, oms_order_id: str, package_id: str) -> str | None:
        query = find_shipment_query(package_id, self.cfg.package_id_field)
        ids = [str(row["id"]) for row in self.rest.suiteql(query, page_size=self._page_size) if row.get("id")]
        if len(ids) > 1:
            # Made outside primebridge (a copied record, a hand-made one): the oldest one stands.
            log.warning("netsuite.package_has_several_fulfillments", order_id=oms_order_id, package_id=package_id,
                        fulfillments=ids)
        return ids[0] if ids else None

    def create_shipment(self, shipment: Shipment) -> str:
        order_id, package_id = shipment.oms_order_id, shipment.package_id
        existing = self.find_shipment(order_id, package_id)
        if existing is not None:
            log.info("netsuite.fulfillment_exists", order_id=order_id, package_id=package_id, fulfillment=existing)
            return existing
        record = self.rest.get("salesOrder", order_id, expand_sub_resources=True)
        if record is None:
            raise Rejected(f"NetSuite salesOrder {order_id} of Amazon package {package_id} does not exist",
                           code="UnknownOrder")
        try:
            # A racing worker's fulfillment shows here as "does not fit" (it took the quantities)
            # or as NetSuite refusing the duplicate externalId: either way, look again.
            body = fulfillments.transform_body(shipment, record, self.cfg)
            new_id = self.rest.transform("salesOrder", order_id, "itemFulfillment", body)
        except Rejected:
            raced = self.find_shipment(order_id, package_id)
            if raced is None:
                raise
            log.info("netsuite.fulfillment_created_concurrently", order_id=order_id, package_id=package_id,
                     fulfillment=raced)
            return raced
        log.info("netsuite.fulfillment_created", order_id=order_id, package_id=package_id, fulfillment=new_id,
                 lines=len(shipment.lines))
        return new_id

    def _fulfillment(self, oms_order_id: str, document_id: str) -> dict[str, Any]:
        record = self.rest.get("itemFulfillment", document_id, expand_sub_resources=True)
        if record is None:
            raise Rejected(f"NetSuite itemFulfillment {document_id} (salesOrder {oms_order_id}) does not exist",
                           code="UnknownDocument")
        created_from = mapping.ref_id(record.get("createdFrom"))
        if created_from is not None and created_from != oms_order_id:
            raise Rejected(f"NetSuite itemFulfillment {document_id} belongs to salesOrder {created_from}, "
                           f"not {oms_order_id}", code="DocumentOfOtherOrder")
        return record

    def _update(self, what: str, oms_order_id: str, document_id: str, body: dict[str, Any],
                replace: tuple[str, ...] = ()) -> None:
        if not body:
            log.debug("netsuite.fulfillment_unchanged", what=what, fulfillment=document_id)
            return
        self.rest.patch("itemFulfillment", document_id, body, replace=replace)
        log.info("netsuite.fulfillment_updated", what=what, order_id=oms_order_id, fulfillment=document_id,
                 fields=sorted(body))

    def record_tracking(self, oms_order_id: str, document_id: str, tracker: Tracker) -> None:
        record = self._fulfillment(oms_order_id, document_id)
        body, replace_packages = fulfillments.tracking_changes(record, tracker, self.cfg)
        self._update("tracking", oms_order_id, document_id, body, ("package",) if replace_packages else ())

    def mark_delivered(self, oms_order_id: str, document_id: str, delivered_at: datetime) -> None:
        record = self._fulfillment(oms_order_id, document_id)
        self._update("delivered", oms_order_id, document_id,
                     fulfillments.delivered_changes(record, delivered_at, self.cfg))

    def record_delivery_failure(self, oms_order_id: str, document_id: str, reason: str,
                                occurred_at: datetime | None) -> None:
        record = self._fulfillment(oms_order_id, document_id)
        self._update("delivery failure", oms_order_id, document_id,
                     fulfillments.failure_changes(record, reason, occurred_at, self.cfg))

    # -- cancellations -------------------------------------------------------------------------------

    def apply_cancellations(self, oms_order_id: str, lines: tuple[LineCancellation, ...]) -> None:
        if not lines:
            return
        record = self.rest.get("salesOrder", oms_order_id, expand_sub_resources=True)
        if record is None:
            raise Rejected(f"NetSuite salesOrder {oms_order_id} does not exist", code="UnknownOrder")
        items = fulfillments.cancellation_lines(oms_order_id, record, lines, self.cfg)
        if not items:
            log.info("netsuite.cancellations_applied_already", order_id=oms_order_id, lines=len(lines))
            return
        # The item sublist is keyed by ``line``: without ``replace`` only the listed lines change (§2.3).
        self.rest.patch("salesOrder", oms_order_id, {"item": {"items": items}})
        log.info("netsuite.cancellations_applied", order_id=oms_order_id,
                 closed=sum(1 for i in items if i.get("isClosed")), lowered=sum(1 for i in items if "quantity" in i))
