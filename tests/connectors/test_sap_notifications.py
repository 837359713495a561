"""SAP push notifications (SOAP / IDoc-XML / CloudEvents) and OData V2 value parsing (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from primebridge.connectors.sap.errors import parse_error_body
from primebridge.connectors.sap.soap import parse_business_event, parse_sales_order_notification
from primebridge.connectors.sap.values import (
    datetimeoffset_literal,
    format_json_datetime,
    key_predicate,
    parse_datetime,
    parse_decimal,
    results,
)
from primebridge.domain.errors import Rejected

SOAP_NOTIFICATION = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
                  xmlns:n0="http://sap.com/xi/SAPGlobal20/Global">
  <soapenv:Header/>
  <soapenv:Body>
    <n0:SalesOrderNotification>
      <MessageHeader><CreationDateTime>2025-01-31T10:15:00Z</CreationDateTime></MessageHeader>
      <SalesOrder actionCode="04"><ID>4711</ID><SalesOrderType>OR</SalesOrderType></SalesOrder>
    </n0:SalesOrderNotification>
  </soapenv:Body>
</soapenv:Envelope>"""

SOAP12_FLAT = """<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope">
  <env:Body><ns:SalesOrderChanged xmlns:ns="urn:merchant">
    <ns:SalesOrder>4800</ns:SalesOrder>
  </ns:SalesOrderChanged></env:Body></env:Envelope>"""

IDOC = """<ORDRSP05><IDOC BEGIN="1"><EDI_DC40 SEGMENT="1"><DOCNUM>0000000000123456</DOCNUM></EDI_DC40>
  <E1EDK01 SEGMENT="1"><CURCY>USD</CURCY><BELNR>0000004711</BELNR></E1EDK01></IDOC></ORDRSP05>"""


# -- SOAP / IDoc ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("message", "expected"), [
    (SOAP_NOTIFICATION, "4711"),
    (SOAP12_FLAT, "4800"),
    (IDOC, "4711"),  # ALPHA padding removed, as OData shows the number
    (SOAP_NOTIFICATION.encode("utf-8"), "4711"),
])
def test_soap_and_idoc_notifications_yield_the_sales_order(message: str | bytes, expected: str) -> None:
    assert parse_sales_order_notification(message) == expected


@pytest.mark.parametrize(("message", "reason"), [
    ("", "empty"),
    ("<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body>",
     "malformed XML"),
    ("<a><b>not closed</a>", "malformed XML"),
    ("<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body/></soap:Envelope>",
     "no Body content"),
    ("<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body><Other><X>1</X></Other>"
     "</soap:Body></soap:Envelope>", "no sales order number in the Other message"),
    ("<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body><soap:Fault>"
     "<faultstring>boom</faultstring></soap:Fault></soap:Body></soap:Envelope>", "SOAP fault: boom"),
    ("<M><SalesOrder>1</SalesOrder><SalesOrder>2</SalesOrder></M>", "several sales orders"),
    ("<M><SalesOrder>12345678901</SalesOrder></M>", "not a sales order number"),
])
def test_bad_notifications_are_rejected_with_the_reason(message: str, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        parse_sales_order_notification(message)


def test_xml_with_dtd_or_entities_is_refused() -> None:
    bomb = """<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>
    <M><SalesOrder>&lol2;</SalesOrder></M>"""
    external = """<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>
    <M><SalesOrder>&x;</SalesOrder></M>"""
    for message in (bomb, external):
        with pytest.raises(Rejected, match="DTD"):
            parse_sales_order_notification(message)


# -- CloudEvents ---------------------------------------------------------------------------------

def test_business_event_yields_the_sales_order() -> None:
    event = {"type": "sap.s4.beh.salesorder.v1.SalesOrder.Changed.v1", "specversion": "1.0",
             "source": "/default/sap.s4.beh/S4HCLNT100", "id": "a1b2", "time": "2025-01-31T10:15:00Z",
             "datacontenttype": "application/json", "data": {"SalesOrder": "4800"}}
    assert parse_business_event(event) == "4800"
    created = {**event, "type": "sap.s4.beh.salesorder.v1.SalesOrder.Created.v1",
               "data": '{"SalesOrder": "0000004801"}'}
    assert parse_business_event(created) == "4801"


@pytest.mark.parametrize(("payload", "reason"), [
    ([], "expected a JSON object"),
    ({"data": {"SalesOrder": "1"}}, "'type' is missing"),
    ({"type": "sap.s4.beh.outbounddelivery.v1.OutboundDelivery.Created.v1", "data": {"SalesOrder": "1"}},
     "not a sales order event"),
    ({"type": "sap.s4.beh.salesorder.v1.SalesOrder.Changed.v1", "specversion": "0.3",
      "data": {"SalesOrder": "1"}}, "specversion"),
    ({"type": "sap.s4.beh.salesorder.v1.SalesOrder.Changed.v1"}, "'data' is missing"),
    ({"type": "sap.s4.beh.salesorder.v1.SalesOrder.Changed.v1", "data": "{not json"}, "not JSON"),
    ({"type": "sap.s4.beh.salesorder.v1.SalesOrder.Changed.v1", "data": {"SalesOrder": ""}},
     "'data.SalesOrder' is missing"),
    ({"type": "sap.s4.beh.salesorder.v1.SalesOrder.Changed.v1", "data": {"Order": "1"}},
     "'data.SalesOrder' is missing"),
])
def test_malformed_business_events_name_what_is_missing(payload: object, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        parse_business_event(payload)


# -- values --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("/Date(1483930804343+0000)/", datetime(2017, 1, 9, 3, 0, 4, 343000, tzinfo=UTC)),
    ("/Date(1483920000000)/", datetime(2017, 1, 9, tzinfo=UTC)),
    ("/Date(1483930804343+0060)/", datetime(2017, 1, 9, 3, 0, 4, 343000, tzinfo=UTC)),
    ("/Date(-86400000)/", datetime(1969, 12, 31, tzinfo=UTC)),
    ("2019-01-09T08:41:03.6829150Z", datetime(2019, 1, 9, 8, 41, 3, 682915, tzinfo=UTC)),
    ("datetimeoffset'2019-01-09T08%3A41%3A03.6829150Z'", datetime(2019, 1, 9, 8, 41, 3, 682915, tzinfo=UTC)),
    ("2024-06-01T12:00:00+02:00", datetime(2024, 6, 1, 10, 0, tzinfo=UTC)),
    (None, None),
    ("", None),
])
def test_parse_datetime_forms(raw: str | None, expected: datetime | None) -> None:
    parsed = parse_datetime(raw)
    assert parsed == expected
    assert parsed is None or parsed.utcoffset() is not None


@pytest.mark.parametrize("raw", ["/Date(abc)/", "yesterday", 12])
def test_parse_datetime_rejects_garbage(raw: object) -> None:
    with pytest.raises(ValueError, match="not an OData date"):
        parse_datetime(raw)


def test_decimals_literals_and_keys() -> None:
    assert parse_decimal("17.55") == Decimal("17.55")
    assert parse_decimal("0.000") == Decimal("0.000")
    assert parse_decimal(3) == Decimal(3)
    assert parse_decimal("") is None
    for bad in ("1,5", "NaN", True):
        with pytest.raises(ValueError, match="not a decimal"):
            parse_decimal(bad)
    assert datetimeoffset_literal(datetime(2024, 1, 1, tzinfo=UTC)) == "datetimeoffset'2024-01-01T00:00:00Z'"
    assert datetimeoffset_literal(datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)) == (
        "datetimeoffset'2024-01-01T00:00:00.1230000Z'")
    moment = datetime(2017, 1, 9, 3, 0, 4, 343999, tzinfo=UTC)
    assert format_json_datetime(moment) == "/Date(1483930804343+0000)/"
    assert format_json_datetime(moment, offset=False) == "/Date(1483930804343)/"
    assert parse_datetime(format_json_datetime(moment)) == moment.replace(microsecond=343000)
    assert key_predicate({"SalesOrder": "4711"}) == "('4711')"
    assert key_predicate({"SalesOrder": "O'B", "SalesOrderItem": "10"}) == (
        "(SalesOrder='O''B',SalesOrderItem='10')")
    assert results({"results": [{"a": 1}]}) == [{"a": 1}]
    assert results({"__deferred": {"uri": "x"}}) == []


def test_error_body_parsing_keeps_message_and_details() -> None:
    import httpx

    body = {"error": {"code": "V1/302", "message": {"lang": "en", "value": "Enter a sold-to party"},
                      "innererror": {"errordetails": [
                          {"code": "V1/302", "message": "Enter a sold-to party", "severity": "error"},
                          {"code": "V4/219", "message": "Sales document was not changed",
                           "severity": "error"},
                          {"code": "XX/1", "message": "just info", "severity": "info"}]}}}
    parsed = parse_error_body(httpx.Response(400, json=body))
    assert parsed.code == "V1/302"
    assert parsed.text() == "Enter a sold-to party; Sales document was not changed"
    html = "<html>ICM error</html>"
    assert parse_error_body(httpx.Response(500, text=html)).message == html
