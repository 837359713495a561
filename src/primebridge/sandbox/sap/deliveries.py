"""The SAP sandbox's outbound deliveries: API_OUTBOUND_DELIVERY_SRV;v=0002 next to the sales orders.

Served under its own service path by the same app, behind the same Basic/OAuth gate and CSRF
handshake as the sales order service (``app.py``). What a client must get right is enforced:

- **Creation with reference.** ``POST A_OutbDeliveryHeader`` is a deep insert whose items reference
  sales order items (``ReferenceSDDocument``/``ReferenceSDDocumentItem``). The quantity must be
  positive and at most the item's open quantity (ordered minus already delivered), the item must
  not be rejected, the unit must be the item's, and only creatable properties are accepted (so
  ``BillOfLading`` on create is refused, as in the EDMX). Header texts may ride along.
- **ETags.** ``DeliveryVersion`` (``W/"'0001'"``) moves on every header change and on goods issue;
  PATCH, DELETE and ``PostGoodsIssue`` need ``If-Match`` (428 without, 412 when stale, ``*`` passes).
- **Goods issue.** ``PostGoodsIssue`` sets the goods movement statuses to ``C`` and records a 601
  movement; a second call is refused. [U] After goods issue the sandbox refuses changes to header
  fields (texts stay changeable): the strict reading of what SAP allows on a posted delivery.
- **Texts.** ``A_OutbDeliveryHeaderText`` is created and changed by key but, being
  ``sap:addressable="false"``, read only through ``to_DeliveryDocumentText``.

The delivered quantity is kept on the sales order item (hidden ``_delivered``), so the sales order
sandbox can refuse to reduce a quantity below it and shows ``DeliveryStatus`` A/B/C. [U] Whether a
delivery bumps the order's ``LastChangeDateTime`` is unconfirmed; the sandbox leaves it alone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from primebridge.sandbox.knobs import ADMIN_PREFIX
from primebridge.sandbox.sap.admin import _plain
from primebridge.sandbox.sap.contracts import edmx
from primebridge.sandbox.sap.delivery_schema import (
    DELIVERY_HEADER,
    DELIVERY_HEADER_TEXT,
    DELIVERY_ITEM,
    DELIVERY_TYPES,
    FUNCTION_IMPORTS,
    NOT_ADDRESSABLE,
)
from primebridge.sandbox.sap.errors import NOT_FOUND, ODataError
from primebridge.sandbox.sap.query import (
    Row,
    Tree,
    compile_filter,
    parse_resource_path,
    path_tree,
    resolve_keys,
    sort_rows,
    string_value,
)
from primebridge.sandbox.sap.schema import EntityType, Nav
from primebridge.sandbox.sap.serialize import entity_uri, render_row, render_value, sort_key
from primebridge.sandbox.sap.service import (
    _check_options,
    _int_option,
    _json_body,
    _next_link,
    _weak,
    metadata,
    service_base,
)
from primebridge.sandbox.sap.state import (
    DELIVERED,
    SapStore,
    _midnight,
    _nested,
    bad,
    coerce,
    default_value,
)

DELIVERY_SERVICE_PATH = "/sap/opu/odata/sap/API_OUTBOUND_DELIVERY_SRV;v=0002"
DEFAULT_DELIVERY_EDMX = edmx("API_OUTBOUND_DELIVERY_SRV_0002")
FIRST_DELIVERY = 80000000
GOODS_ISSUE_MOVEMENT = "601"
ITEM_NAV = DELIVERY_HEADER.navs["to_DeliveryDocumentItem"]
TEXT_NAV = DELIVERY_HEADER.navs["to_DeliveryDocumentText"]


def _edm_time(value: datetime) -> str:
    return value.strftime("PT%HH%MM%SS")


class DeliveryStore:
    """Delivery tables next to the sales orders, under the sales order store's lock."""

    def __init__(self, orders: SapStore) -> None:
        self.orders = orders
        self.lock = orders.lock
        self.headers: dict[str, Row] = {}
        self.items: dict[tuple[str, str], Row] = {}
        self.texts: dict[tuple[str, str, str], Row] = {}
        self.goods_movements: list[dict[str, Any]] = []
        self.next_number = FIRST_DELIVERY
        orders.reset_hooks.append(self.reset)

    def reset(self) -> None:
        with self.lock:
            self.headers.clear()
            self.items.clear()
            self.texts.clear()
            self.goods_movements.clear()
            self.next_number = FIRST_DELIVERY

    # -- lookup --------------------------------------------------------------------------------

    @staticmethod
    def etag(etype: EntityType, row: Row) -> str | None:
        if etype.etag_prop is None:
            return None
        return f"W/\"'{row.get(etype.etag_prop)}'\""

    def table(self, etype: EntityType) -> dict[Any, Row]:
        if etype is DELIVERY_HEADER:
            return self.headers
        if etype is DELIVERY_ITEM:
            return self.items
        return self.texts

    def get(self, etype: EntityType, keys: dict[str, str]) -> Row | None:
        key = tuple(keys[k] for k in etype.keys)
        return self.table(etype).get(key[0] if len(key) == 1 else key)

    def require(self, etype: EntityType, keys: dict[str, str]) -> Row:
        row = self.get(etype, keys)
        if row is None:
            raise ODataError(404, f"Resource not found for segment '{etype.type_name}'", code=NOT_FOUND)
        return row

    def children(self, nav: Nav, header: Row) -> list[Row]:
        doc = header["DeliveryDocument"]
        rows = self.items.values() if nav is ITEM_NAV else self.texts.values()
        target = DELIVERY_TYPES[nav.target]
        return sorted((r for r in rows if r["DeliveryDocument"] == doc),
                      key=lambda r: sort_key(tuple(str(r[k]) for k in target.keys)))

    def items_of(self, doc: str) -> list[Row]:
        return self.children(ITEM_NAV, self.headers[doc])

    # -- creating ------------------------------------------------------------------------------

    @staticmethod
    def _fields(etype: EntityType, body: dict[str, Any], *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        """Request properties → stored values: unknown and non-creatable properties are refused."""
        out: dict[str, Any] = {}
        for name, value in body.items():
            if name == "__metadata" or name in etype.navs or name in skip:
                continue
            prop = etype.props.get(name)
            if prop is None:
                raise bad(f"Property '{name}' is invalid for {etype.type_name} (or not modelled by the sandbox)",
                          name)
            if not prop.creatable:
                raise bad(f"Property {name} of {etype.type_name} cannot be set on create", name)
            out[name] = coerce(prop, value, etype.type_name)
        return out

    def _new_number(self) -> str:
        while str(self.next_number) in self.headers:
            self.next_number += 1
        number = str(self.next_number)
        self.next_number += 1
        return number

    def create(self, body: dict[str, Any]) -> Row:
        """The deep insert: validate everything first, then write, so a refusal leaves no trace."""
        for nav in ("to_DeliveryDocumentPartner", "to_HandlingUnitHeaderDelivery"):
            if nav in body:
                raise ODataError(501, f"Deep insert of {nav} is not modelled by the SAP sandbox")
        header_fields = self._fields(DELIVERY_HEADER, body)
        item_bodies = _nested(body.get("to_DeliveryDocumentItem"), "to_DeliveryDocumentItem")
        if not item_bodies:
            raise bad("An outbound delivery needs at least one item with reference to a sales order item "
                      "(to_DeliveryDocumentItem)", "to_DeliveryDocumentItem")
        plans, orders = self._plan_items(item_bodies)
        texts = self._plan_texts(_nested(body.get("to_DeliveryDocumentText"), "to_DeliveryDocumentText"))

        first_order = orders[0]
        now = self.orders.tick()
        doc = self._new_number()
        ship_to = next((p.get("Customer") for p in self.orders.rows_of("A_SalesOrderHeaderPartner", first_order)
                        if p.get("PartnerFunctionInternalCode") == "WE"), None)
        so_header = self.orders.header(first_order) or {}
        first_item = plans[0][0]
        header: Row = {name: default_value(prop) for name, prop in DELIVERY_HEADER.props.items()}
        header.update({
            "DeliveryDocument": doc, "DeliveryDocumentType": "LF", "SDDocumentCategory": "J",
            "ShippingPoint": header_fields.get("ShippingPoint") or first_item.get("ShippingPoint")
            or first_item.get("ProductionPlant") or "1010",
            "SalesOrganization": so_header.get("SalesOrganization", ""),
            "SoldToParty": so_header.get("SoldToParty", ""), "ShipToParty": ship_to or so_header.get("SoldToParty", ""),
            "ShippingCondition": so_header.get("ShippingCondition", ""),
            "CreationDate": _midnight(now), "CreationTime": _edm_time(now),
            "CreatedByUser": self.orders.username.upper(), "LastChangeDate": _midnight(now),
            "DeliveryDate": so_header.get("RequestedDeliveryDate") or _midnight(now),
            "PlannedGoodsIssueDate": _midnight(now), "ActualGoodsMovementDate": None,
            "OverallGoodsMovementStatus": "A", "OverallPickingStatus": "A", "OverallPackingStatus": "",
            "OverallSDProcessStatus": "A", "OverallProofOfDeliveryStatus": "", "OverallDelivReltdBillgStatus": "A",
            "TotalBlockStatus": "", "DeliveryVersion": "0001",
        })
        self.headers[doc] = header
        for number, (so_item, quantity, unit) in enumerate(plans, start=1):
            item: Row = {name: default_value(prop) for name, prop in DELIVERY_ITEM.props.items()}
            item.update({
                "DeliveryDocument": doc, "DeliveryDocumentItem": str(number * 10),
                "DeliveryDocumentItemCategory": "TAN", "SDDocumentCategory": "J",
                "ReferenceSDDocument": so_item["SalesOrder"], "ReferenceSDDocumentItem": so_item["SalesOrderItem"],
                "ReferenceSDDocumentCategory": "C", "Material": so_item.get("Material", ""),
                "Plant": so_item.get("ProductionPlant", ""), "StorageLocation": so_item.get("StorageLocation", ""),
                "DeliveryDocumentItemText": so_item.get("SalesOrderItemText", ""),
                "ActualDeliveryQuantity": quantity, "DeliveryQuantityUnit": unit,
                "OriginalDeliveryQuantity": quantity, "ActualDeliveredQtyInBaseUnit": quantity, "BaseUnit": unit,
                "GoodsMovementStatus": "A", "GoodsMovementType": GOODS_ISSUE_MOVEMENT, "PickingStatus": "A",
                "PackingStatus": "", "CreationDate": _midnight(now), "LastChangeDate": _midnight(now),
                "DeliveryVersion": "0001",
            })
            self.items[(doc, item["DeliveryDocumentItem"])] = item
            so_item[DELIVERED] = (so_item.get(DELIVERED) or Decimal(0)) + quantity
        for text in texts:
            self._insert_text(doc, text)
        for order_id in orders:
            self.orders.recompute(order_id)
        self.orders.stats["deliveries_created"] += 1
        return header

    def _plan_items(self, bodies: list[dict[str, Any]]) -> tuple[list[tuple[Row, Decimal, str]], list[str]]:
        plans: list[tuple[Row, Decimal, str]] = []
        asked: dict[tuple[str, str], Decimal] = {}
        orders: list[str] = []
        partners: set[tuple[str, str]] = set()
        for index, body in enumerate(bodies):
            where = f"to_DeliveryDocumentItem[{index}]"
            fields = self._fields(DELIVERY_ITEM, body, skip=("DeliveryDocument",))
            order_id = str(fields.get("ReferenceSDDocument") or "")
            item_no = str(fields.get("ReferenceSDDocumentItem") or "")
            if not order_id or not item_no:
                raise bad(f"{where}: ReferenceSDDocument and ReferenceSDDocumentItem are required (the sandbox "
                          f"creates deliveries item by item)", "ReferenceSDDocumentItem")
            header = self.orders.header(order_id)
            if header is None:
                raise bad(f"Sales document {order_id} does not exist", "ReferenceSDDocument")
            so_item = self.orders.tables["A_SalesOrderItem"].get((order_id, item_no))
            if so_item is None:
                raise bad(f"Item {item_no} of sales document {order_id} does not exist", "ReferenceSDDocumentItem")
            if so_item.get("SalesDocumentRjcnReason"):
                raise bad(f"Item {item_no} of sales document {order_id} is rejected (reason "
                          f"{so_item['SalesDocumentRjcnReason']}) and cannot be delivered", "ReferenceSDDocumentItem")
            if header.get("DeliveryBlockReason"):
                raise bad(f"Sales document {order_id} is blocked for delivery (reason {header['DeliveryBlockReason']})",
                          "ReferenceSDDocument")
            ordered = so_item.get("RequestedQuantity") or Decimal(0)
            open_qty = ordered - (so_item.get(DELIVERED) or Decimal(0)) - asked.get((order_id, item_no), Decimal(0))
            quantity = fields.get("ActualDeliveryQuantity")
            quantity = open_qty if quantity is None else quantity
            if quantity <= 0:
                raise bad(f"{where}: delivery quantity {quantity} must be positive (open quantity of "
                          f"{order_id}/{item_no}: {open_qty})", "ActualDeliveryQuantity")
            if quantity > open_qty:
                raise bad(f"Delivery quantity {quantity} exceeds the open quantity {open_qty} of item {item_no} of "
                          f"sales document {order_id}", "ActualDeliveryQuantity")
            unit = str(so_item.get("RequestedQuantityUnit") or "PC")
            sent_unit = fields.get("DeliveryQuantityUnit")
            if sent_unit and sent_unit != unit:
                raise bad(f"{where}: unit {sent_unit} differs from the order item's unit {unit}",
                          "DeliveryQuantityUnit")
            asked[(order_id, item_no)] = asked.get((order_id, item_no), Decimal(0)) + quantity
            partners.add((str(header.get("SoldToParty")), str(header.get("ShippingCondition"))))
            if order_id not in orders:
                orders.append(order_id)
            plans.append((so_item, quantity, unit))
        if len(partners) > 1:
            raise bad("Sales documents with different sold-to parties or shipping conditions cannot be combined in "
                      "one delivery", "ReferenceSDDocument")
        return plans, orders

    def _plan_texts(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: set[tuple[str, str]] = set()
        texts = []
        for body in bodies:
            fields = self._fields(DELIVERY_HEADER_TEXT, body, skip=("DeliveryDocument",))
            key = (str(fields.get("TextElement") or ""), str(fields.get("Language") or ""))
            if not all(key):
                raise bad("A delivery text needs TextElement and Language", "TextElement")
            if key in seen:
                raise bad(f"Text {key[0]} in language {key[1]} is given twice", "TextElement")
            seen.add(key)
            texts.append(fields)
        return texts

    def _insert_text(self, doc: str, fields: dict[str, Any]) -> Row:
        row: Row = {name: default_value(prop) for name, prop in DELIVERY_HEADER_TEXT.props.items()}
        row.update(fields)
        row["DeliveryDocument"] = doc
        row["TextElementDescription"] = f"Text {row['TextElement']}"
        key = (doc, str(row["TextElement"]), str(row["Language"]))
        if key in self.texts:
            raise bad(f"Text {key[1]} ({key[2]}) of delivery {doc} already exists", "TextElement")
        self.texts[key] = row
        return row

    def create_text(self, body: dict[str, Any], parent: Row | None) -> Row:
        doc = str(parent["DeliveryDocument"]) if parent is not None else str(body.get("DeliveryDocument") or "")
        if parent is not None and body.get("DeliveryDocument") not in (None, "", doc):
            raise bad(f"Key DeliveryDocument '{body['DeliveryDocument']}' does not match the parent's '{doc}'",
                      "DeliveryDocument")
        if doc not in self.headers:
            raise bad(f"Delivery {doc!r} does not exist", "DeliveryDocument")
        (fields,) = self._plan_texts([body])
        return self._insert_text(doc, fields)

    # -- changing ------------------------------------------------------------------------------

    def _bump(self, header: Row, *rows: Row) -> None:
        version = f"{int(header['DeliveryVersion']) + 1:04d}"
        today = _midnight(datetime.now(UTC))
        for row in (header, *rows):
            row["DeliveryVersion"] = version
            row["LastChangeDate"] = today
        header["LastChangedByUser"] = self.orders.username.upper()

    def update(self, etype: EntityType, row: Row, body: dict[str, Any], *, replace: bool = False,
               admin: bool = False) -> None:
        if etype is DELIVERY_ITEM:
            raise ODataError(501, "Changing delivery items is not modelled by the SAP sandbox")
        changes: dict[str, Any] = {}
        for name, value in body.items():
            if name == "__metadata":
                continue
            prop = etype.props.get(name)
            if prop is None:
                raise bad(f"Property '{name}' is invalid for {etype.type_name} (or not modelled by the sandbox)",
                          name)
            new = coerce(prop, value, etype.type_name)
            if name in etype.keys or not prop.updatable:
                if new == row.get(name):
                    continue  # Gateway tolerates a read-only field sent back unchanged
                if not admin:
                    raise bad(f"Property {name} of {etype.type_name} is read-only and cannot be changed", name)
            changes[name] = new
        if replace:
            for name, prop in etype.props.items():
                if prop.updatable and name not in etype.keys and name not in changes:
                    changes[name] = default_value(prop)
        if etype is DELIVERY_HEADER_TEXT:
            row.update(changes)
            return
        if changes and row.get("OverallGoodsMovementStatus") == "C" and not admin:
            raise bad(f"Delivery {row['DeliveryDocument']} has already been posted for goods issue; its header "
                      f"can no longer be changed", next(iter(changes)))
        if changes:
            row.update(changes)
            self._bump(row)

    def delete(self, etype: EntityType, row: Row) -> None:
        if etype is DELIVERY_ITEM:
            raise ODataError(501, "Deleting delivery items is not modelled by the SAP sandbox")
        if etype is DELIVERY_HEADER_TEXT:
            self.texts.pop((row["DeliveryDocument"], row["TextElement"], row["Language"]), None)
            return
        doc = str(row["DeliveryDocument"])
        if row.get("OverallGoodsMovementStatus") == "C":
            raise bad(f"Delivery {doc} has been posted for goods issue and cannot be deleted; reverse the goods "
                      f"issue first")
        orders: set[str] = set()
        for item in self.items_of(doc):
            so_item = self.orders.tables["A_SalesOrderItem"].get((item["ReferenceSDDocument"],
                                                                   item["ReferenceSDDocumentItem"]))
            if so_item is not None:
                so_item[DELIVERED] = max(Decimal(0), (so_item.get(DELIVERED) or Decimal(0))
                                         - item["ActualDeliveryQuantity"])
                orders.add(str(item["ReferenceSDDocument"]))
            del self.items[(doc, item["DeliveryDocumentItem"])]
        for key in [k for k in self.texts if k[0] == doc]:
            del self.texts[key]
        del self.headers[doc]
        for order_id in orders:
            self.orders.recompute(order_id)

    def post_goods_issue(self, header: Row) -> list[dict[str, Any]]:
        doc = str(header["DeliveryDocument"])
        if header.get("OverallGoodsMovementStatus") == "C":
            raise bad(f"Delivery {doc} has already been posted for goods issue", "DeliveryDocument")
        if header.get("DeliveryBlockReason"):
            raise bad(f"Delivery {doc} is blocked (reason {header['DeliveryBlockReason']}); goods issue is not "
                      f"possible", "DeliveryDocument")
        now = self.orders.tick()
        items = self.items_of(doc)
        report = []
        for item in items:
            item["GoodsMovementStatus"] = item["PickingStatus"] = "C"
            self.goods_movements.append({
                "delivery": doc, "item": item["DeliveryDocumentItem"], "material": item["Material"],
                "plant": item["Plant"], "storage_location": item["StorageLocation"],
                "quantity": str(item["ActualDeliveryQuantity"]), "unit": item["DeliveryQuantityUnit"],
                "movement_type": GOODS_ISSUE_MOVEMENT, "posted_at": now.isoformat()})
            report.append({
                "__metadata": {"type": f"{DELIVERY_HEADER.namespace}.PickingReport"},
                "SystemMessageIdentification": "VL", "SystemMessageNumber": "311", "SystemMessageType": "S",
                "SystemMessageVariable1": doc, "SystemMessageVariable2": "", "SystemMessageVariable3": "",
                "SystemMessageVariable4": "", "DeliveryDocument": doc,
                "DeliveryDocumentItem": item["DeliveryDocumentItem"], "Material": item["Material"],
                "ActualDeliveryQuantity": render_value(DELIVERY_ITEM.props["ActualDeliveryQuantity"],
                                                       item["ActualDeliveryQuantity"]),
                "DeliveryQuantityUnit": item["DeliveryQuantityUnit"], "Batch": item["Batch"],
                "DeliveryDocumentItemText": item["DeliveryDocumentItemText"]})
        header.update({"OverallGoodsMovementStatus": "C", "OverallPickingStatus": "C",
                       "OverallSDProcessStatus": "C", "ActualGoodsMovementDate": _midnight(now),
                       "ActualGoodsMovementTime": _edm_time(now)})
        self._bump(header, *items)
        self.orders.stats["goods_issues_posted"] += 1
        return report


# -- rendering -------------------------------------------------------------------------------------

def render(store: DeliveryStore, etype: EntityType, row: Row, base: str, *, expand: Tree | None = None,
           select: Tree | None = None) -> dict[str, Any]:
    expand, select = expand or {}, select or {}

    def expanded(name: str, nav: Nav) -> Any:
        target = DELIVERY_TYPES[nav.target]
        return {"results": [render(store, target, child, base, expand=expand[name], select=select.get(name))
                            for child in store.children(nav, row)]}

    return render_row(etype, row, entity_uri(base, etype, row), store.etag(etype, row), expand=expand,
                      select=select, expanded=expanded)


def _validate_tree(tree: Tree, etype: EntityType, *, select: bool) -> None:
    for name, sub in tree.items():
        if select and (name == "*" or name in etype.props):
            if sub:
                raise bad(f"Invalid $select path below property '{name}'")
            continue
        nav = etype.navs.get(name)
        if nav is None:
            raise bad(f"Property '{name}' not found in type '{etype.qualified_type}' (or not modelled by the "
                      f"sandbox)")
        _validate_tree(sub, DELIVERY_TYPES[nav.target], select=select)


# -- request handling --------------------------------------------------------------------------------

def _function_params(request: Request, needed: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for name, raw in request.query_params.items():
        if name.startswith("$") or name == "sap-client":
            continue
        if name not in needed:
            raise bad(f"Function import parameter '{name}' is unknown")
        values[name] = string_value(raw, name)
    missing = [n for n in needed if n not in values]
    if missing:
        raise bad(f"Function import parameter(s) {', '.join(missing)} missing")
    return values


def _check_if_match(request: Request, store: DeliveryStore, etype: EntityType, row: Row) -> None:
    current = store.etag(etype, row)
    if current is None:
        return
    sent = request.headers.get("if-match")
    if not sent:
        if store.orders.settings.require_if_match:
            store.orders.stats["precondition_required"] += 1
            raise ODataError(428, f"Precondition required: send If-Match with the ETag of {etype.type_name}")
        return
    candidates = [_weak(t) for t in sent.split(",")]
    if "*" in candidates or _weak(current) in candidates:
        return
    store.orders.stats["precondition_failed"] += 1
    raise ODataError(412, f"{etype.type_name} was changed in the meantime (ETag mismatch); read it again")


def dispatch(request: Request, store: DeliveryStore, service_path: str, metadata_path: Path | None, method: str,
             rest: str, raw: bytes) -> Response:
    """One OData request on the delivery service (auth and CSRF were checked by the caller)."""
    path = rest.strip("/")
    if path == "":
        if method not in ("GET", "HEAD"):
            raise ODataError(405, f"{method} is not allowed on the service root")
        return JSONResponse({"d": {"EntitySets": sorted(DELIVERY_TYPES)}})
    if path == "$metadata":
        return metadata(metadata_path)
    if path == "$batch":
        raise ODataError(501, "$batch is not supported by the SAP sandbox")
    if path in FUNCTION_IMPORTS:
        return _function(request, store, method, path)
    segments = parse_resource_path(path)
    first = segments[0]
    etype = DELIVERY_TYPES.get(first.name)
    if etype is None:
        raise ODataError(404, f"Resource not found for segment '{first.name}' (entity set unknown or not modelled "
                              f"by the sandbox)", code=NOT_FOUND)
    store.orders.stats[f"{method} {etype.set_name}"] += 1
    row = store.require(etype, resolve_keys(etype, first.keys)) if first.keys is not None else None
    if etype.set_name in NOT_ADDRESSABLE and method in ("GET", "HEAD"):
        raise bad(f"Entity set {etype.set_name} is not addressable; read it through "
                  f"A_OutbDeliveryHeader(...)/{TEXT_NAV.name}")
    parent, nav = None, None
    if len(segments) > 2:
        raise ODataError(404, "Resource path too deep for the SAP sandbox", code=NOT_FOUND)
    if len(segments) == 2:
        if row is None or etype is not DELIVERY_HEADER:
            raise bad(f"Segment '{segments[1].name}' must follow a single {DELIVERY_HEADER.set_name}")
        nav = etype.navs.get(segments[1].name)
        if nav is None or segments[1].keys is not None:
            raise ODataError(404, f"Resource not found for segment '{segments[1].name}'", code=NOT_FOUND)
        parent, etype, row = row, DELIVERY_TYPES[nav.target], None
    if method in ("GET", "HEAD"):
        return _get(request, store, service_path, etype, row,
                    store.children(nav, parent) if nav is not None and parent is not None else None)
    if method == "POST":
        if row is not None:
            raise ODataError(405, f"POST is not allowed on a single {etype.type_name}; use PATCH or MERGE")
        base = service_base(request, service_path)
        if etype is DELIVERY_HEADER:
            created = store.create(_json_body(raw))
            expand: Tree = {"to_DeliveryDocumentItem": {}, "to_DeliveryDocumentText": {}}
        elif etype is DELIVERY_HEADER_TEXT:
            created, expand = store.create_text(_json_body(raw), parent), {}
        else:
            raise ODataError(405, f"Entity set {etype.set_name} is not creatable; items are created with the "
                                  f"delivery (deep insert of {DELIVERY_HEADER.set_name})")
        headers = {"Location": entity_uri(base, etype, created)}
        etag = store.etag(etype, created)
        if etag:
            headers["ETag"] = etag
        return JSONResponse({"d": render(store, etype, created, base, expand=expand)}, status_code=201,
                            headers=headers)
    if method in ("PATCH", "MERGE", "PUT", "DELETE"):
        if row is None:
            raise ODataError(405, f"{method} needs a single entity, not the collection {etype.set_name}")
        _check_if_match(request, store, etype, row)
        if method == "DELETE":
            store.delete(etype, row)
        else:
            store.update(etype, row, _json_body(raw), replace=method == "PUT")
        return Response(status_code=204)
    raise ODataError(405, f"Method {method} is not allowed")


def _get(request: Request, store: DeliveryStore, service_path: str, etype: EntityType, row: Row | None,
         children: list[Row] | None) -> Response:
    _check_options(request)
    base = service_base(request, service_path)
    expand = path_tree(request.query_params.get("$expand"))
    select = path_tree(request.query_params.get("$select"))
    _validate_tree(expand, etype, select=False)
    _validate_tree(select, etype, select=True)
    if row is not None:
        etag = store.etag(etype, row)
        return JSONResponse({"d": render(store, etype, row, base, expand=expand, select=select)},
                            headers={"ETag": etag} if etag else None)
    rows = children if children is not None else list(store.table(etype).values())
    text = request.query_params.get("$filter")
    if text:
        predicate = compile_filter(text, etype)
        rows = [r for r in rows if predicate(r)]
    total = len(rows)
    rows = sorted(rows, key=lambda r: sort_key(tuple(str(r[k]) for k in etype.keys)))
    orderby = request.query_params.get("$orderby")
    if orderby:
        rows = sort_rows(rows, orderby, etype)
    skip = _int_option(request, "$skip") or 0
    top = _int_option(request, "$top")
    window = rows[skip:] if top is None else rows[skip:skip + top]
    token = _int_option(request, "$skiptoken") or 0
    page_size = store.orders.settings.server_page_size
    page = window[token:token + page_size] if page_size else window[token:]
    data: dict[str, Any] = {"results": [render(store, etype, r, base, expand=expand, select=select) for r in page]}
    if request.query_params.get("$inlinecount") == "allpages":
        data["__count"] = str(total)
    if page_size and token + page_size < len(window):
        data["__next"] = _next_link(request, token + page_size)
    return JSONResponse({"d": data})


def _function(request: Request, store: DeliveryStore, method: str, name: str) -> Response:
    if method != "POST":
        raise ODataError(405, f"Function import {name} must be called with POST")
    store.orders.stats[f"POST {name}"] += 1
    if name != "PostGoodsIssue":
        raise ODataError(501, f"Function import {name} is not modelled by the SAP sandbox")
    params = _function_params(request, ("DeliveryDocument",))
    header = store.get(DELIVERY_HEADER, params)
    if header is None:
        raise bad(f"Delivery {params['DeliveryDocument']} does not exist", "DeliveryDocument")
    _check_if_match(request, store, DELIVERY_HEADER, header)
    return JSONResponse({"d": {"results": store.post_goods_issue(header)}})


# -- admin API ------------------------------------------------------------------------------------------

def delivery_view(store: DeliveryStore, doc: str) -> dict[str, Any] | None:
    header = store.headers.get(doc)
    if header is None:
        return None
    items = store.items_of(doc)
    return {
        **{k: _plain(v) for k, v in header.items()},
        "etag": store.etag(DELIVERY_HEADER, header),
        "goods_issued": header.get("OverallGoodsMovementStatus") == "C",
        "orders": sorted({str(i["ReferenceSDDocument"]) for i in items}),
        "items": [{k: _plain(v) for k, v in i.items()} for i in items],
        "texts": {str(t["TextElement"]): t["TextElementText"] for t in store.children(TEXT_NAV, header)},
        "goods_movements": [m for m in store.goods_movements if m["delivery"] == doc],
    }


def delivery_admin_routes(store: DeliveryStore) -> list[Route]:
    """``GET /_sandbox/deliveries[?order=ID]``, ``GET /_sandbox/deliveries/{id}`` and
    ``PATCH /_sandbox/deliveries/{id}`` (``{"fields": {...}, "goods_issue": true}``: what a warehouse
    user does in SAP, bypassing ETags and the create/update flags)."""

    async def list_all(request: Request) -> Response:
        order = request.query_params.get("order")
        with store.lock:
            views = [delivery_view(store, doc) for doc in sorted(store.headers)]
        return JSONResponse({"deliveries": [v for v in views if v and (order is None or order in v["orders"])]})

    async def get_one(request: Request) -> Response:
        with store.lock:
            view = delivery_view(store, request.path_params["delivery"])
        if view is None:
            return JSONResponse({"error": f"delivery {request.path_params['delivery']} does not exist"},
                                status_code=404)
        return JSONResponse(view)

    async def patch(request: Request) -> Response:
        doc = request.path_params["delivery"]
        try:
            spec = await request.json()
        except ValueError as exc:
            return JSONResponse({"error": f"body is not JSON: {exc}"}, status_code=400)
        if not isinstance(spec, dict) or set(spec) - {"fields", "goods_issue"}:
            return JSONResponse({"error": "body must be {\"fields\": {...}, \"goods_issue\": true|false}"},
                                status_code=400)
        with store.lock:
            header = store.headers.get(doc)
            if header is None:
                return JSONResponse({"error": f"delivery {doc} does not exist"}, status_code=404)
            try:
                if spec.get("fields"):
                    store.update(DELIVERY_HEADER, header, dict(spec["fields"]), admin=True)
                if spec.get("goods_issue"):
                    store.post_goods_issue(header)
            except ODataError as exc:
                return JSONResponse({"error": exc.message}, status_code=400)
            return JSONResponse(delivery_view(store, doc))

    async def movements(request: Request) -> Response:
        with store.lock:
            return JSONResponse({"goods_movements": list(store.goods_movements)})

    prefix = f"{ADMIN_PREFIX}/deliveries"
    return [
        Route(prefix, list_all, methods=["GET"]),
        Route(prefix + "/{delivery}", get_one, methods=["GET"]),
        Route(prefix + "/{delivery}", patch, methods=["PATCH"]),
        Route(f"{ADMIN_PREFIX}/goods-movements", movements, methods=["GET"]),
    ]

