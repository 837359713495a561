"""The sandbox's SuiteQL engine on its own: the subset it supports and the errors for the rest."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from primebridge.sandbox.netsuite.suiteql import SuiteQLError, Table, execute, oracle_format

ROWS: list[dict[str, Any]] = [
    {"id": 1, "tranid": "SO1", "type": "SalesOrd", "status": "A", "cf:status": "SalesOrd:A",
     "lastmodifieddate": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "lastmodifiedby": 7, "memo": "O'Brien",
     "total": Decimal("10.50")},
    {"id": 2, "tranid": "SO2", "type": "SalesOrd", "status": "B", "cf:status": "SalesOrd:B",
     "lastmodifieddate": datetime(2025, 1, 2, 3, 4, 6, tzinfo=UTC), "lastmodifiedby": 3, "memo": None,
     "total": Decimal("3")},
    {"id": 3, "tranid": "IF3", "type": "ItemShip", "status": "C", "cf:status": "ItemShip:C",
     "lastmodifieddate": datetime(2025, 1, 1, tzinfo=UTC), "lastmodifiedby": None, "memo": "x",
     "total": None},
]
TABLES = {"transaction": Table("transaction", frozenset({"id", "tranid", "type", "status", "lastmodifieddate",
                                                         "lastmodifiedby", "memo", "total"}), lambda: ROWS,
                               open_prefixes=("custbody",))}


def q(query: str, params: list[Any] | None = None) -> list[dict[str, str]]:
    return execute(query, TABLES, params or [], now=datetime(2025, 6, 1, tzinfo=UTC))


def ids(query: str, params: list[Any] | None = None) -> list[str]:
    return [row["id"] for row in q(query, params)]


def test_values_are_strings_keys_lower_case_and_nulls_left_out() -> None:
    rows = q("SELECT T.ID, t.Memo AS Note, t.total, t.lastmodifieddate FROM transaction t ORDER BY t.id")
    assert rows[0] == {"id": "1", "note": "O'Brien", "total": "10.5", "lastmodifieddate": "1/2/2025"}
    assert rows[1] == {"id": "2", "total": "3", "lastmodifieddate": "1/2/2025"}


def test_polling_query_of_the_connector() -> None:
    query = ("SELECT t.id AS id, TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD\"T\"HH24:MI:SS') AS lastmodified "
             "FROM transaction t WHERE t.type = 'SalesOrd' AND t.lastmodifieddate >= "
             "TO_TIMESTAMP('2025-01-02 03:04:05', 'YYYY-MM-DD HH24:MI:SS') "
             "AND (t.lastmodifiedby IS NULL OR t.lastmodifiedby <> 3) ORDER BY t.lastmodifieddate, t.id")
    assert q(query) == [{"id": "1", "lastmodified": "2025-01-02T03:04:05"}]


@pytest.mark.parametrize(("where", "expected"), [
    ("status IN ('A', 'C')", ["1", "3"]),
    ("status NOT IN ('A')", ["2", "3"]),
    ("id BETWEEN 2 AND 3", ["2", "3"]),
    ("tranid LIKE 'SO%'", ["1", "2"]),
    ("NOT (type = 'SalesOrd')", ["3"]),
    ("lastmodifiedby <> 7", ["2"]),  # NULL <> 7 is unknown, so row 3 is not returned
    ("NVL(lastmodifiedby, 0) <> 7", ["2", "3"]),
    ("memo IS NULL", ["2"]),
    ("memo = 'O''Brien'", ["1"]),
    ("BUILTIN.CF(status) = 'SalesOrd:B'", ["2"]),
    ("id = '2'", ["2"]),
    ("(status = 'A' OR status = 'B') AND id > 1", ["2"]),
    ("UPPER(tranid) = 'IF3'", ["3"]),
    ("lastmodifieddate < SYSDATE", ["1", "2", "3"]),
])
def test_where_conditions(where: str, expected: list[str]) -> None:
    assert ids(f"SELECT id FROM transaction WHERE {where} ORDER BY id") == expected


def test_params_order_desc_by_alias_and_fetch_first() -> None:
    assert ids("SELECT id, total AS amt FROM transaction WHERE type = ? ORDER BY amt DESC", ["SalesOrd"]) == \
        ["1", "2"]
    assert ids("SELECT id FROM transaction ORDER BY id DESC FETCH FIRST 2 ROWS ONLY") == ["3", "2"]
    assert q("SELECT * FROM transaction WHERE id = 3") == [
        {"id": "3", "lastmodifieddate": "1/1/2025", "memo": "x", "status": "C", "tranid": "IF3",
         "type": "ItemShip"}]


def test_custom_body_fields_are_columns_even_when_empty() -> None:
    assert ids("SELECT id FROM transaction WHERE custbody_pb_hold IS NULL ORDER BY id") == ["1", "2", "3"]


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT id FROM transaction t JOIN transactionline tl ON tl.transaction = t.id", "JOIN is not supported"),
    ("SELECT nosuch FROM transaction", "Field 'nosuch' for record 'transaction' was not found"),
    ("SELECT id FROM customer", "table 'customer' is not available"),
    ("SELECT id FROM transaction WHERE lastmodifieddate > '2025-01-01'", "TO_TIMESTAMP"),
    ("SELECT id FROM transaction WHERE id = ?", "1 ? placeholders but 0 params"),
    ("SELECT id FROM transaction WHERE", "ends too early"),
    ("SELECT id FROM transaction ORDER BY id LIMIT 5", "LIMIT is not supported"),
    ("SELECT id FROM transaction WHERE x.id = 1", "unknown table alias 'x'"),
    ("SELECT id FROM transaction WHERE id = 1 garbage", "unexpected 'garbage'"),
    ("SELECT id FROM transaction WHERE TO_TIMESTAMP('2025', 'YYYY-Q') > lastmodifieddate", "not supported"),
    ("SELECT id FROM transaction WHERE id IN (SELECT id FROM transaction)", "sub-queries"),
    ("SELECT id FROM transaction WHERE id", "expected a comparison"),
    ("SELECT id FROM transaction WHERE id = 1 ;", "unexpected character ';'"),
])
def test_unsupported_or_wrong_queries_fail_clearly(query: str, message: str) -> None:
    with pytest.raises(SuiteQLError, match=message.replace("?", r"\?").replace("(", r"\(")):
        q(query)


def test_oracle_format_conversion() -> None:
    assert oracle_format('YYYY-MM-DD"T"HH24:MI:SS') == "%Y-%m-%dT%H:%M:%S"
    assert oracle_format("MM/DD/YYYY HH:MI AM") == "%m/%d/%Y %I:%M %p"
