"""Fulfill with Amazon: an OMS sales order becomes a Buy with Prime order (create, release hold).

Exactly once, whatever crashes: the intent (with the order alias) is stored before ``createOrder``;
a retry after a crash or a timeout looks the order up by alias, and an alias conflict adopts the
existing order. Write-backs to the OMS are idempotent, so every step can simply run again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from primebridge.domain.errors import AlreadyExists, PermanentError, Rejected, TransientError
from primebridge.domain.model import Alias, AmazonOrder, ExecutionState, SalesOrder
from primebridge.domain.routing import Fulfill, Invalid, NotForAmazon, RoutingPolicy, decide, line_alias
from primebridge.ports import AmazonOrders, FulfillmentStore, LinkState, OrderLink, SalesOrderSystem
from primebridge.runtime import context

PULL_BATCH = 200
SETTLED = (LinkState.WRITTEN_BACK, LinkState.REJECTED, LinkState.NOT_FOR_AMAZON)


def fingerprint(order: SalesOrder, policy: RoutingPolicy) -> str:
    """A digest of what matters to Amazon, leaving out what primebridge itself writes back, so the
    change notification caused by our own write-back (an echo) is recognised and ignored. The
    routing policy is part of it: after a config fix (a SKU mapped, a location added) a rejected
    order is decided again on its next sync or replay."""
    data = asdict(replace(order, amazon_order_id=None, changed_at=None, version=None,
                          lines=tuple(replace(line, amazon_line_id=None) for line in order.lines)))
    text = json.dumps([data, repr(policy)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def watermark_text(moment: datetime) -> str:
    """Fixed-width UTC text, so watermarks compare correctly as strings too."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class FulfillWithAmazon:
    oms: SalesOrderSystem
    amazon: AmazonOrders
    store: FulfillmentStore
    policy: RoutingPolicy

    # -- change detection ------------------------------------------------------------------------

    def watermark_name(self) -> str:
        return f"{self.oms.name}.sales_orders"

    def pull_changes(self, initial: datetime) -> int:
        """One scheduled pull: enqueue a sync for every order changed since the watermark."""
        stored = self.store.get_watermark(self.watermark_name())
        since = datetime.fromisoformat(stored) if stored else initial
        batch: list[str] = []
        latest = since
        added = 0
        for order_id, changed_at in self.oms.changed_order_ids(since):
            batch.append(order_id)
            latest = max(latest, changed_at)
            if len(batch) >= PULL_BATCH:
                added += self._enqueue(batch, latest)
                batch = []
        if batch or stored is None:
            added += self._enqueue(batch, latest)
        return added

    def _enqueue(self, order_ids: list[str], latest: datetime) -> int:
        return self.store.enqueue_order_syncs(
            self.oms.name, order_ids, watermark=(self.watermark_name(), watermark_text(latest)))

    # -- one order -------------------------------------------------------------------------------

    def sync_order(self, order_id: str) -> str:
        # Ids learnt midway (context.add) stay inside this order's scope, not the caller's.
        with context.correlated(oms=self.oms.name, oms_order_id=order_id):
            return self._sync_order(order_id)

    def _sync_order(self, order_id: str) -> str:
        order = self.oms.read_order(order_id)
        if order is None:
            raise Rejected(f"{self.oms.name} has no sales order {order_id}", code="UnknownOrder")
        link = self.store.get_order_link(self.oms.name, order_id)
        digest = fingerprint(order, self.policy)
        amazon_id = order.amazon_order_id or (link.amazon_order_id if link else None)
        if amazon_id:
            context.add(amazon_order_id=amazon_id)
        if (link and link.state in SETTLED and link.fingerprint == digest
                and order.amazon_order_id == link.amazon_order_id):
            return "unchanged since last sync (no relevant change, or the echo of our own write-back)"

        decision = decide(order, self.policy)
        if amazon_id is None and link and link.state in (LinkState.INTENT, LinkState.CREATED) and link.alias:
            # A previous attempt may have created the order and died before recording it.
            adopted = self.amazon.get_order_by_alias(link.alias)
            if adopted is not None:
                context.add(amazon_order_id=adopted.order_id)
                self.store.note("adopt", "ok",
                                f"found Amazon order {adopted.order_id} by alias after a retry")
                return self._settle_known(order, adopted, decision, digest)
        if amazon_id:
            existing = self.amazon.get_order(amazon_id)
            if existing is None:
                raise PermanentError(f"Amazon has no order {amazon_id}, which {self.oms.name} order "
                                     f"{order_id} refers to")
            return self._settle_known(order, existing, decision, digest)

        match decision:
            case NotForAmazon(reason):
                self._save(order, LinkState.NOT_FOR_AMAZON, digest, reason=reason)
                return f"not for Amazon: {reason}"
            case Invalid(reason, code):
                self._save(order, LinkState.REJECTED, digest, reason=reason)
                self.store.note("validate", "rejected", reason)
                raise Rejected(reason, code=code)
            case Fulfill(request):
                self._save(order, LinkState.INTENT, None, alias=request.alias)
                try:
                    created = self.amazon.create_order(request)
                    context.add(amazon_order_id=created.order_id)
                    self.store.note("create", "ok", f"Amazon order {created.order_id} created")
                except AlreadyExists:
                    found = self.amazon.get_order_by_alias(request.alias)
                    if found is None:
                        raise TransientError(f"alias {request.alias.alias_id} conflicts but the order "
                                             "is not visible yet") from None
                    context.add(amazon_order_id=found.order_id)
                    self.store.note("adopt", "ok", f"alias exists: adopted Amazon order {found.order_id}")
                    created = found
                except Rejected as exc:
                    self._save(order, LinkState.REJECTED, digest, reason=exc.reason, alias=request.alias)
                    self.store.note("create", "rejected", exc.reason)
                    raise
                return self._settle_known(order, created, decision, digest)
        raise AssertionError(f"unhandled decision {decision!r}")

    def _settle_known(self, order: SalesOrder, amazon: AmazonOrder, decision: object, digest: str) -> str:
        """Bring a known Amazon order in line with the OMS order, then write the ids back."""
        context.add(amazon_order_id=amazon.order_id)
        alias = Alias(self.policy.alias_type, order.order_id)
        self._save(order, LinkState.CREATED, None, alias=alias, amazon_order_id=amazon.order_id,
                   line_ids=self._line_ids(order, amazon))
        actions: list[str] = []
        if alias not in amazon.aliases:
            amazon = self.amazon.update_order(amazon.order_id, aliases=(alias,))
            actions.append("alias added")
        wants_release = isinstance(decision, Fulfill) and not order.on_hold
        if wants_release and amazon.execution_state is ExecutionState.NOT_STARTED:
            amazon = self.amazon.update_order(amazon.order_id, execution_state=ExecutionState.STARTED)
            self.store.note("release", "ok", "hold removed in the OMS: fulfillment started")
            actions.append("released")
        elif order.on_hold and amazon.execution_state is ExecutionState.STARTED:
            self.store.note("hold", "ignored", "the OMS order is on hold but Amazon already started it; "
                            "Buy with Prime does not document a way back to NOT_STARTED")
        line_ids = self._line_ids(order, amazon)
        if order.amazon_order_id != amazon.order_id or any(
                line.amazon_line_id != line_ids.get(line.line_id)
                for line in order.lines if line.line_id in line_ids):
            self.oms.write_amazon_ids(order, amazon.order_id, line_ids)
            actions.append("ids written back")
        self._save(order, LinkState.WRITTEN_BACK, digest, alias=alias, amazon_order_id=amazon.order_id,
                   line_ids=line_ids)
        state = amazon.execution_state.value
        return f"Amazon order {amazon.order_id} ({state}): " + (", ".join(actions) or "in sync")

    def _line_ids(self, order: SalesOrder, amazon: AmazonOrder) -> dict[str, str]:
        ids: dict[str, str] = {}
        for line in order.lines:
            match = amazon.line_for_alias(line_alias(order, line, self.policy))
            if match is not None:
                ids[line.line_id] = match.line_id
        return ids

    def _save(self, order: SalesOrder, state: LinkState, digest: str | None, *, reason: str | None = None,
              alias: Alias | None = None, amazon_order_id: str | None = None,
              line_ids: dict[str, str] | None = None) -> None:
        self.store.save_order_link(OrderLink(
            oms=order.oms, oms_order_id=order.order_id, state=state, alias=alias,
            amazon_order_id=amazon_order_id, line_ids=line_ids or {}, fingerprint=digest, reason=reason))

