"""Real-time notifications from SAP → the sales order number to sync (reference §7).

Two push paths exist besides polling: SAP business events (CloudEvents JSON through Event Mesh,
the preferred path) and XML pushed by the merchant's middleware — a SOAP envelope carrying a
sales-order notification or an IDoc-XML (ORDRSP) document. A notification only says *which* order
changed; the flow reads the order itself through OData, so nothing else from the message is used.

[U] No SAP-documented SOAP service for outbound sales-order notifications is confirmed; the
element names accepted below (``SalesOrder``, ``SalesOrderID``, ``SalesOrderNumber``,
``SalesDocument``, ``SalesOrder/ID``, IDoc ``E1EDK01/BELNR``) cover the shapes seen in practice
and can be extended with ``id_elements``.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any
from xml.parsers import expat

from primebridge.domain.errors import Rejected

DEFAULT_ID_ELEMENTS = ("SalesOrder", "SalesOrderID", "SalesOrderNumber", "SalesDocument")
MAX_ORDER_ID = 10
EVENT_TYPE_PREFIX = "sap.s4.beh.salesorder."
_EVENT_TYPE = re.compile(r"^sap\.s4\.beh\.salesorder\.v\d+\.SalesOrder\.[A-Za-z]+\.v\d+$")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_xml(data: bytes | str) -> ET.Element:
    """Parses with expat directly so DTDs and entity declarations can be refused outright.

    SOAP forbids a DTD in a message, and refusing it closes entity-expansion and external-entity
    attacks without a third-party parser.
    """
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def name(raw: str) -> str:
        return "{" + raw if "}" in raw else raw

    def refuse(*_: Any) -> None:
        raise Rejected("SAP notification: XML with a DTD or entity declarations is not accepted")

    parser.StartElementHandler = lambda tag, attrs: builder.start(
        name(tag), {name(k): v for k, v in attrs.items()})
    parser.EndElementHandler = lambda tag: builder.end(name(tag))
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    try:
        parser.Parse(data.encode("utf-8") if isinstance(data, str) else data, True)
    except expat.ExpatError as exc:
        raise Rejected(f"SAP notification: malformed XML: {exc}") from None
    try:
        return builder.close()
    except Exception as exc:  # an empty document makes the builder fail
        raise Rejected(f"SAP notification: malformed XML: {exc}") from None


def _message_root(root: ET.Element) -> ET.Element:
    if _local(root.tag) != "Envelope":
        return root  # IDoc-XML or a bare message posted by middleware
    body = next((child for child in root if _local(child.tag) == "Body"), None)
    message = next(iter(body), None) if body is not None else None
    if message is None:
        raise Rejected("SAP notification: the SOAP envelope has no Body content")
    if _local(message.tag) == "Fault":
        fault = " ".join(t.strip() for t in message.itertext() if t.strip())
        raise Rejected(f"SAP notification: the message is a SOAP fault: {fault[:200]}")
    return message


def _normalise_id(raw: str, where: str) -> str:
    value = raw.strip()
    if value.isdigit():
        # IDocs carry the number with ALPHA padding (0000004711); OData shows it without.
        value = value.lstrip("0") or "0"
    if not value or len(value) > MAX_ORDER_ID:
        raise Rejected(f"SAP notification: {where} {raw.strip()!r} is not a sales order number "
                       f"(1-{MAX_ORDER_ID} characters)")
    return value


def _candidates(message: ET.Element, id_elements: Iterable[str]) -> list[tuple[str, str]]:
    names = set(id_elements)
    found: list[tuple[str, str]] = []
    for element in message.iter():
        local = _local(element.tag)
        children = list(element)
        text = (element.text or "").strip()
        if local == "E1EDK01":
            belnr = next((c for c in children if _local(c.tag) == "BELNR" and (c.text or "").strip()), None)
            if belnr is not None:
                found.append(("E1EDK01/BELNR", belnr.text or ""))
        elif local in names and not children and text:
            found.append((local, text))
        elif local == "SalesOrder" and children:
            ident = next((c for c in children if _local(c.tag) == "ID" and (c.text or "").strip()), None)
            if ident is not None:
                found.append(("SalesOrder/ID", ident.text or ""))
    return found


def parse_sales_order_notification(data: bytes | str, *,
                                   id_elements: Iterable[str] = DEFAULT_ID_ELEMENTS) -> str:
    """The sales order number a SOAP/IDoc-XML notification is about; ``Rejected`` when there is none."""
    if not data or not data.strip():
        raise Rejected("SAP notification: the message body is empty")
    message = _message_root(_parse_xml(data))
    found = _candidates(message, id_elements)
    if not found:
        raise Rejected(f"SAP notification: no sales order number in the {_local(message.tag)} message "
                       f"(looked for {', '.join([*id_elements, 'SalesOrder/ID', 'E1EDK01/BELNR'])})")
    ids = {_normalise_id(raw, where) for where, raw in found}
    if len(ids) > 1:
        raise Rejected(f"SAP notification: the {_local(message.tag)} message names several sales orders "
                       f"({', '.join(sorted(ids))}); expected one")
    return ids.pop()


def parse_business_event(payload: object) -> str:
    """The sales order of an SAP business event (CloudEvents 1.0 JSON), e.g.
    ``{"type": "sap.s4.beh.salesorder.v1.SalesOrder.Changed.v1", "data": {"SalesOrder": "4800"}}``."""
    if not isinstance(payload, Mapping):
        raise Rejected(f"SAP business event: expected a JSON object, got {type(payload).__name__}")
    event_type = payload.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise Rejected("SAP business event: the CloudEvents 'type' is missing")
    if not _EVENT_TYPE.match(event_type):
        raise Rejected(f"SAP business event: type {event_type!r} is not a sales order event "
                       f"({EVENT_TYPE_PREFIX}v1.SalesOrder.<Created|Changed|…>.v1)")
    spec = payload.get("specversion")
    if spec is not None and str(spec) != "1.0":
        raise Rejected(f"SAP business event: unsupported CloudEvents specversion {spec!r}")
    data = payload.get("data")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            raise Rejected("SAP business event: 'data' is a string but not JSON") from None
    if not isinstance(data, Mapping):
        raise Rejected("SAP business event: 'data' is missing or not an object")
    raw = data.get("SalesOrder")
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip():
        raise Rejected("SAP business event: 'data.SalesOrder' is missing or empty")
    return _normalise_id(raw, "data.SalesOrder")
