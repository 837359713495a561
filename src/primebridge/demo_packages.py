"""The package part of ``primebridge demo``: Amazon ships, tracks, delivers, fails and cancels packages
in the sandbox; the sandbox delivers the events to primebridge's intake; the OMS documents are read
back from the OMS sandboxes and shown per OMS.

``SandboxPackages`` (drives the sandbox-only ``updateOrderPackageInformation``) and the readers of OMS
documents are also what the end-to-end tests use, so the demo and the tests check the same things.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from primebridge.config import AmazonConfig, NetSuiteShipmentsConfig, SapShipmentsConfig, Settings
from primebridge.connectors.amazon.client import BwpGraphQLClient, request_operation
from primebridge.connectors.amazon.orders import BwpOrders
from primebridge.connectors.amazon.subscriptions import basic_auth_config, build_subscriptions
from primebridge.connectors.http import build_client
from primebridge.connectors.oauth import ClientCredentialsTokens
from primebridge.domain.model import AmazonOrder
from primebridge.domain.packages import AmazonPackage
from primebridge.entrypoints.bootstrap import Service
from primebridge.flows.amazon_to_oms.fulfillment_updates import PACKAGE_EVENTS
from primebridge.ports import Notification
from primebridge.sandbox.seed import SandboxSeeder

UPDATE_PACKAGES = """
mutation updateOrderPackageInformation($orderIdentifier: OrderIdentifierInput!,
                                       $input: UpdateOrderPackageInformationInput!) {
  updateOrderPackageInformation(orderIdentifier: $orderIdentifier, input: $input) { order { id } }
}
"""


class SandboxPackages:
    """What a tester does in the Buy with Prime sandbox to an order's packages (reference §2.9)."""

    def __init__(self, cfg: AmazonConfig) -> None:
        http = build_client(system="amazon", base_url="", timeout=cfg.timeout_seconds,
                            operation=request_operation)
        tokens = ClientCredentialsTokens(http, cfg.token_url, cfg.client_id, cfg.client_secret.reveal(),
                                         client_auth=cfg.token_client_auth)
        self.client = BwpGraphQLClient(http, tokens, target_id=cfg.target_id, target_id_header=cfg.target_id_header,
                                       api_version=cfg.api_version, url=cfg.graphql_url)
        self.orders = BwpOrders(self.client, identifier=cfg.product_identifier)
        self._http = http

    def close(self) -> None:
        self._http.close()

    def order(self, order_id: str) -> AmazonOrder:
        order = self.orders.get_order(order_id)
        if order is None:
            raise AssertionError(f"the Amazon sandbox has no order {order_id}")
        return order

    def packages(self, order_id: str) -> tuple[AmazonPackage, ...]:
        return tuple(self.order(order_id).packages)

    def package(self, order_id: str, package_id: str) -> AmazonPackage:
        return next(p for p in self.packages(order_id) if p.package_id == package_id)

    def only_package(self, order_id: str) -> AmazonPackage:
        [package] = self.packages(order_id)
        return package

    def update(self, order_id: str, details: list[dict[str, Any]]) -> None:
        self.client.execute(UPDATE_PACKAGES, {"orderIdentifier": {"orderId": order_id},
                                              "input": {"packageInformation": {"details": details}}})

    def _state(self, order_id: str, package_id: str, state: str, reason: str | None = None,
               amounts: dict[str, int] | None = None) -> None:
        entry: dict[str, Any] = {"state": state}
        if reason:
            entry["reason"] = reason
        if amounts:
            entry["packageInformationDetailsFor"] = {"orderLineItemAmounts": [
                {"lineItemId": {"lineItemId": line}, "amount": {"value": value}} for line, value in amounts.items()]}
        self.update(order_id, [{"id": package_id, "packageState": {"packageInformationState": entry}}])

    def ship(self, order_id: str, package_id: str) -> None:
        self._state(order_id, package_id, "IN_TRANSIT")

    def deliver(self, order_id: str, package_id: str) -> None:
        self._state(order_id, package_id, "DELIVERED")

    def cancel(self, order_id: str, package_id: str, reason: str) -> None:
        self._state(order_id, package_id, "CANCELLED", reason)

    def split(self, order_id: str, package_id: str, amounts: dict[str, int], state: str,
              reason: str | None = None) -> str:
        """Moves ``amounts`` of a PENDING package to a new package in ``state``; returns its id."""
        before = {p.package_id for p in self.packages(order_id)}
        self._state(order_id, package_id, state, reason, amounts)
        [new] = [p.package_id for p in self.packages(order_id) if p.package_id not in before]
        return new

    def milestone(self, order_id: str, package_id: str, code: str) -> None:
        tracker = self.package(order_id, package_id).tracker
        if tracker is None:
            raise AssertionError(f"package {package_id} has no tracker yet")
        identifier = {"trackingNumber": tracker.tracking_number, "carrierCode": tracker.carrier_code}
        self.update(order_id, [{"id": package_id, "packageState": {"packageTrackerState": {
            "packageTrackerIdentifier": identifier, "state": code}}}])


def subscribe_package_events(settings: Settings, url: str) -> None:
    """Subscribes ``url`` (primebridge's ``/events/amazon``) to the package events in the sandbox,
    with the Basic credentials primebridge's intake expects (``events.basic_*``)."""
    cfg = settings.events
    if not cfg.basic_username or cfg.basic_password is None:
        raise AssertionError("events.basic_username and events.basic_password must be set")
    bwp = build_subscriptions(settings.amazon)
    profile = bwp.ensure_auth_profile(cfg.auth_profile_alias,
                                      basic_auth_config(cfg.basic_username, cfg.basic_password.reveal()))
    bwp.subscribe(list(PACKAGE_EVENTS), url, profile)


# -- the OMS documents, read back from the OMS sandboxes ---------------------------------------------


@dataclass(frozen=True)
class OmsDocument:
    oms: str
    document_id: str
    package_id: str | None
    lines: dict[str, Decimal]
    tracking: str | None = None
    milestone: str | None = None
    delivered: str | None = None
    failure: str | None = None


def sap_documents(http: httpx.Client, sap_url: str, order_id: str, cfg: SapShipmentsConfig) -> list[OmsDocument]:
    response = http.get(f"{sap_url}/_sandbox/deliveries", params={"order": order_id})
    response.raise_for_status()
    found = []
    for view in response.json()["deliveries"]:
        texts = view.get("texts") or {}
        lines: dict[str, Decimal] = {}
        for item in view.get("items") or []:
            if str(item.get("ReferenceSDDocument")) == order_id:
                line = str(item.get("ReferenceSDDocumentItem"))
                lines[line] = lines.get(line, Decimal(0)) + Decimal(str(item.get("ActualDeliveryQuantity") or 0))
        found.append(OmsDocument(
            oms="sap", document_id=str(view.get("DeliveryDocument")), package_id=texts.get(cfg.package_text_id),
            lines=lines, tracking=view.get("BillOfLading") or texts.get(cfg.tracking_text_id),
            milestone=texts.get(cfg.milestone_text_id), delivered=texts.get(cfg.delivered_text_id),
            failure=texts.get(cfg.failure_text_id)))
    return found


def netsuite_documents(http: httpx.Client, netsuite_url: str, order_id: str,
                       cfg: NetSuiteShipmentsConfig) -> list[OmsDocument]:
    response = http.get(f"{netsuite_url}/_sandbox/item-fulfillments", params={"sales_order": order_id})
    response.raise_for_status()
    found = []
    for view in response.json()["items"]:
        lines: dict[str, Decimal] = {}
        for row in (view.get("item") or {}).get("items") or []:
            if row.get("itemReceive") is False:
                continue
            ref = row.get("orderLine")
            line = str(ref.get("id") if isinstance(ref, dict) else ref)
            lines[line] = lines.get(line, Decimal(0)) + Decimal(str(row.get("quantity") or 0))
        numbers = [str(r.get("packageTrackingNumber")) for r in (view.get("package") or {}).get("items") or []
                   if r.get("packageTrackingNumber")]

        def field_value(name: str | None, view: dict[str, Any] = view) -> str | None:
            value = view.get(name) if name else None
            return None if value in (None, "") else str(value)

        found.append(OmsDocument(
            oms="netsuite", document_id=str(view.get("id")), package_id=field_value(cfg.package_id_field),
            lines=lines, tracking=", ".join(numbers) or None, milestone=field_value(cfg.milestone_code_field),
            delivered=field_value(cfg.delivered_time_field), failure=field_value(cfg.delivery_failure_field)))
    return found


# -- the demo ------------------------------------------------------------------------------------------


@dataclass
class DemoPackageOrder:
    """One fulfilled order and what the demo does to its packages, with the outcome it expects."""

    oms: str
    order_id: str
    amazon_order_id: str
    story: str
    expect: Callable[[list[OmsDocument], dict[str, Any]], list[str]]
    notified: bool = False  # a delivery failure: exactly one notification expected


class PackageDemo:
    """Seeds orders of its own (so it controls quantities), fulfils them, then plays one story per
    order at Amazon: delivered, lost, undeliverable, cancelled before shipping, split."""

    def __init__(self, console: Console, service: Service, seeder: SandboxSeeder, urls: dict[str, str],
                 web_url: str, problems: list[str]) -> None:
        self.console = console
        self.service = service
        self.settings = service.settings
        self.seeder = seeder
        self.urls = urls
        self.web_url = web_url
        self.problems = problems
        self.sandbox = SandboxPackages(self.settings.amazon)
        self.http = httpx.Client(timeout=10.0)
        self.orders: list[DemoPackageOrder] = []
        self.notifications: list[Notification] = []

    def notify(self, notification: Notification) -> None:
        """Stands in for the configured notifier, so the demo can check who was told what."""
        self.notifications.append(notification)

    def close(self) -> None:
        self.sandbox.close()
        self.http.close()

    def documents(self, oms: str, order_id: str) -> list[OmsDocument]:
        if oms == "sap":
            return sap_documents(self.http, self.urls["sap"], order_id, self.settings.sap.shipments)
        return netsuite_documents(self.http, self.urls["netsuite"], order_id, self.settings.netsuite.shipments)

    def sales_order(self, oms: str, order_id: str) -> dict[str, Any]:
        return self.seeder.sap_view(order_id) if oms == "sap" else self.seeder.netsuite_view(order_id)

    def run(self) -> None:
        events = self.service.package_events
        if events is None:
            self.problems.append("Amazon package events are not wired to any OMS")
            return
        events.updates.notifier = self
        subscribe_package_events(self.settings, f"{self.web_url}/events/amazon")
        stories = (self._delivered, self._lost, self._undeliverable, self._cancelled, self._split)
        for oms in ("sap", "netsuite"):
            if oms not in self.service.fulfill:
                continue
            for story in stories:
                qty = 3 if story == self._split else 1
                order_id = self.seeder.sap_order(qty=str(qty)) if oms == "sap" else self.seeder.netsuite_order(
                    qty=str(qty))
                self.service.fulfill[oms].sync_order(order_id)
                link = self.service.store.get_order_link(oms, order_id)
                if link is None or not link.amazon_order_id:
                    self.problems.append(f"{oms} order {order_id} was not fulfilled with Amazon")
                    continue
                story(oms, order_id, link.amazon_order_id)
        self._settle()
        self.report()

    def _settle(self) -> None:
        """Let the sandbox deliver every event, then let primebridge work them off."""
        response = self.http.post(f"{self.urls['amazon']}/_sandbox/deliveries/drain", params={"timeout": 15})
        response.raise_for_status()
        if not response.json().get("drained"):
            self.problems.append(f"the Amazon sandbox did not deliver every event: {response.json()}")
        self.service.worker(name="demo-packages").run_until_idle(timeout=30)

    # -- the stories ------------------------------------------------------------------------------

    def _add(self, oms: str, order_id: str, amazon_id: str, story: str,
             expect: Callable[[list[OmsDocument], dict[str, Any]], list[str]], *, notified: bool = False) -> None:
        self.orders.append(DemoPackageOrder(oms, order_id, amazon_id, story, expect, notified))

    def _delivered(self, oms: str, order_id: str, amazon_id: str) -> None:
        package = self.sandbox.only_package(amazon_id).package_id
        self.sandbox.ship(amazon_id, package)
        self.sandbox.milestone(amazon_id, package, "OUT_FOR_DELIVERY")
        self.sandbox.deliver(amazon_id, package)
        self._add(oms, order_id, amazon_id, "shipped, out for delivery, delivered",
                  lambda docs, _: _one(docs, delivered=True))

    def _lost(self, oms: str, order_id: str, amazon_id: str) -> None:
        package = self.sandbox.only_package(amazon_id).package_id
        self.sandbox.ship(amazon_id, package)
        self.sandbox.milestone(amazon_id, package, "LOST")
        self._add(oms, order_id, amazon_id, "shipped, carrier reports LOST",
                  lambda docs, _: _one(docs, failure=True), notified=True)

    def _undeliverable(self, oms: str, order_id: str, amazon_id: str) -> None:
        package = self.sandbox.only_package(amazon_id).package_id
        self.sandbox.ship(amazon_id, package)
        self.sandbox.cancel(amazon_id, package, "UNDELIVERABLE")
        self._add(oms, order_id, amazon_id, "shipped, cancelled as UNDELIVERABLE",
                  lambda docs, _: _one(docs, failure=True), notified=True)

    def _cancelled(self, oms: str, order_id: str, amazon_id: str) -> None:
        package = self.sandbox.only_package(amazon_id).package_id
        self.sandbox.cancel(amazon_id, package, "CUSTOMER_REQUESTED")
        self._add(oms, order_id, amazon_id, "cancelled before shipping (CUSTOMER_REQUESTED)",
                  lambda docs, order: (["a cancelled package got an OMS document"] if docs else [])
                  + _cancelled_in_full(oms, order))

    def _split(self, oms: str, order_id: str, amazon_id: str) -> None:
        package = self.sandbox.only_package(amazon_id)
        line = package.lines[0]
        if line.quantity < 2:
            self.problems.append(f"{oms} order {order_id}: the split story needs a line with 2 or more units")
            return
        self.sandbox.split(amazon_id, package.package_id, {line.amazon_line_id: 1}, "CANCELLED", "UNFULFILLABLE")
        self.sandbox.ship(amazon_id, package.package_id)
        self.sandbox.deliver(amazon_id, package.package_id)
        shipped = line.quantity - 1
        self._add(oms, order_id, amazon_id, f"split: 1 unit cancelled (UNFULFILLABLE), {shipped} shipped, delivered",
                  lambda docs, order: _one(docs, delivered=True, quantity=shipped) + _reduced(oms, order, shipped))

    # -- the verdict ------------------------------------------------------------------------------

    def report(self) -> None:
        for oms, title, kind in (("sap", "SAP S/4HANA", "outbound deliveries"),
                                 ("netsuite", "NetSuite", "item fulfillments")):
            orders = [o for o in self.orders if o.oms == oms]
            if not orders:
                continue
            table = Table(title=f"Buy with Prime packages → {title} ({kind}: one per package)",
                          title_justify="left", show_lines=True)
            for column in ("order", "what Amazon did", f"{kind} (lines · tracking)", "milestone · state",
                           "sales order lines now", "check"):
                table.add_column(column, overflow="fold")
            for order in orders:
                docs = self.documents(oms, order.order_id)
                sales_order = self.sales_order(oms, order.order_id)
                problems = order.expect(docs, sales_order)
                told = sum(1 for n in self.notifications
                           if n.details.get("oms") == oms and n.details.get("oms_order_id") == order.order_id)
                if told != (1 if order.notified else 0):
                    problems.append(f"{told} delivery failure notification(s), expected {int(order.notified)}")
                self.problems.extend(f"{oms} order {order.order_id} ({order.story}): {p}" for p in problems)
                table.add_row(
                    order.order_id, order.story,
                    "\n".join(f"{d.document_id}: " + ", ".join(f"{k}×{v.normalize():f}" for k, v in d.lines.items())
                              + f" · {d.tracking or '-'}" for d in docs) or "-",
                    "\n".join(_state_cell(d) for d in docs) or "-",
                    _lines_cell(oms, sales_order),
                    "[green]ok[/green]" if not problems else "[red]" + escape("; ".join(problems)) + "[/red]")
            self.console.print(table)
        self.console.print(f"delivery failure notifications raised: {len(self.notifications)} (the demo "
                           f"captures them; a real run sends them through notify.kind = "
                           f"\"{self.settings.notify.kind}\")", soft_wrap=True)


def _state_cell(doc: OmsDocument) -> str:
    """Latest milestone code, then delivered or the failure (SAP texts hold more than that)."""
    parts = [escape((doc.milestone or "-").split(" | ")[0])]
    if doc.delivered:
        parts.append("[green]delivered[/green]")
    if doc.failure:
        parts.append(f"[red]failed:[/red] {escape(doc.failure.split(' at ')[0])}")
    return " · ".join(parts)


def _lines_cell(oms: str, order: dict[str, Any]) -> str:
    """What the cancellations did to the sales order: quantity per line, rejected or closed."""
    cells = []
    for line in _order_lines(oms, order):
        if oms == "sap":
            number, quantity = line.get("SalesOrderItem"), line.get("RequestedQuantity")
            reason = line.get("SalesDocumentRjcnReason")
            state = f", rejected {reason}" if reason else ""
        else:
            number, quantity = line.get("line"), line.get("quantity")
            state = ", closed" if line.get("isClosed") else ""
        amount = "?" if quantity is None else f"{Decimal(str(quantity)).normalize():f}"
        cells.append(f"{number}: qty {amount}{state}")
    return "\n".join(cells) or "-"


def _one(docs: list[OmsDocument], *, delivered: bool = False, failure: bool = False,
         quantity: Decimal | None = None) -> list[str]:
    if len(docs) != 1:
        return [f"expected one OMS document, found {len(docs)}"]
    doc = docs[0]
    problems = []
    if not doc.package_id:
        problems.append(f"document {doc.document_id} does not carry the Amazon package id")
    if not doc.tracking:
        problems.append(f"document {doc.document_id} has no tracking number")
    if delivered and not doc.delivered:
        problems.append(f"document {doc.document_id} is not marked delivered")
    if failure and not doc.failure:
        problems.append(f"document {doc.document_id} has no delivery failure recorded")
    if quantity is not None and sum(doc.lines.values()) != quantity:
        problems.append(f"document {doc.document_id} ships {sum(doc.lines.values())}, expected {quantity}")
    return problems


def _order_lines(oms: str, order: dict[str, Any]) -> list[dict[str, Any]]:
    if oms == "sap":
        items = order.get("to_Item") or order.get("items") or []
        return list(items.get("results", []) if isinstance(items, dict) else items)
    items = order.get("item") or order.get("items") or []
    return list(items.get("items", []) if isinstance(items, dict) else items)


def _cancelled_in_full(oms: str, order: dict[str, Any]) -> list[str]:
    lines = _order_lines(oms, order)
    if oms == "sap":
        open_lines = [str(i.get("SalesOrderItem")) for i in lines if not i.get("SalesDocumentRjcnReason")]
    else:
        open_lines = [str(i.get("line")) for i in lines if not i.get("isClosed")]
    return [f"line(s) {', '.join(open_lines)} not cancelled in the OMS"] if open_lines else []


def _reduced(oms: str, order: dict[str, Any], remaining: Decimal) -> list[str]:
    lines = _order_lines(oms, order)
    key = "RequestedQuantity" if oms == "sap" else "quantity"
    quantities = [Decimal(str(i.get(key))) for i in lines if i.get(key) is not None]
    return [] if remaining in quantities else [f"no OMS line reduced to {remaining} (quantities {quantities})"]


def run_package_demo(console: Console, service: Service, seeder: SandboxSeeder, urls: dict[str, str],
                     web_url: str, problems: list[str]) -> None:
    """The package part of ``primebridge demo``; what went wrong is appended to ``problems``."""
    console.print("[bold]Amazon → OMS[/bold]: ships, tracks, delivers, fails and cancels packages; the "
                  "sandbox delivers the events to primebridge")
    demo = PackageDemo(console, service, seeder, urls, web_url, problems)
    try:
        demo.run()
    finally:
        demo.close()
