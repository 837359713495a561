"""Stored rows → OData V2 verbose JSON exactly as SAP Gateway writes it.

``__metadata`` with id/uri/type/etag, ``__deferred`` for navigation that was not expanded,
``{"results": [...]}`` for expanded to-many, decimals as strings and dates as ``/Date(ms)/``
(``Edm.DateTime``) or ``/Date(ms+0000)/`` (``Edm.DateTimeOffset``). Kept independent of the
connector's formatting helpers so a formatting bug cannot hide on both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from primebridge.sandbox.sap.query import Row, Tree
from primebridge.sandbox.sap.schema import ENTITY_TYPES, EntityType, Nav, Prop
from primebridge.sandbox.sap.state import SapStore

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def json_date(value: datetime, *, offset: bool) -> str:
    millis = (value - _EPOCH) // timedelta(milliseconds=1)
    return f"/Date({millis}+0000)/" if offset else f"/Date({millis})/"


def render_value(prop: Prop, value: Any) -> Any:
    if value is None:
        return None
    if prop.type == "Edm.Decimal":
        number = Decimal(value)
        if prop.kind == "amount":
            return str(number.quantize(Decimal("0.01")))
        return format(number.normalize(), "f")
    if prop.type == "Edm.DateTimeOffset":
        return json_date(value, offset=True)
    if prop.type == "Edm.DateTime":
        return json_date(value, offset=False)
    return value


def key_predicate(etype: EntityType, row: Row) -> str:
    def lit(value: object) -> str:
        return quote("'" + str(value).replace("'", "''") + "'", safe="'")

    if len(etype.keys) == 1:
        return f"({lit(row[etype.keys[0]])})"
    return "(" + ",".join(f"{k}={lit(row[k])}" for k in etype.keys) + ")"


def sort_key(key: tuple[str, ...]) -> tuple[tuple[int, str], ...]:
    """Item numbers sort as numbers ("10" < "100"), other keys as text."""
    return tuple((len(part), part) if part.isdigit() else (1 << 30, part) for part in key)


def entity_uri(base: str, etype: EntityType, row: Row) -> str:
    return f"{base}/{etype.set_name}{key_predicate(etype, row)}"


def render_row(etype: EntityType, row: Row, uri: str, etag: str | None, *, expand: Tree, select: Tree,
               expanded: Callable[[str, Nav], Any]) -> dict[str, Any]:
    """One entity of any service: ``__metadata``, the ``$select``-ed properties, and navigation either
    deferred or, when in ``$expand``, whatever ``expanded(name, nav)`` renders (each service knows its
    own children)."""
    meta: dict[str, Any] = {"id": uri, "uri": uri, "type": etype.qualified_type}
    if etag:
        meta["etag"] = etag
    out: dict[str, Any] = {"__metadata": meta}
    all_props = not select or "*" in select
    for name, prop in etype.props.items():
        if all_props or name in select:
            out[name] = render_value(prop, row.get(name))
    for name, nav in etype.navs.items():
        if select and name not in select:
            continue  # with $select, navigation appears only when selected (OData V2)
        out[name] = expanded(name, nav) if name in expand else {"__deferred": {"uri": f"{uri}/{name}"}}
    return out


def render_entity(store: SapStore, etype: EntityType, row: Row, base: str, *, expand: Tree | None = None,
                  select: Tree | None = None) -> dict[str, Any]:
    expand = expand or {}
    select = select or {}

    def expanded(name: str, nav: Nav) -> Any:
        target = ENTITY_TYPES[nav.target]
        children = sorted(store.follow(nav, row), key=lambda r: sort_key(store.key_of(target, r)))
        rendered = [render_entity(store, target, child, base, expand=expand[name], select=select.get(name))
                    for child in children]
        return {"results": rendered} if nav.many else (rendered[0] if rendered else None)

    return render_row(etype, row, entity_uri(base, etype, row), store.etag(etype, row), expand=expand,
                      select=select, expanded=expanded)
