"""A small, honest SuiteQL engine: the subset primebridge's queries use, and a clear error for the rest.

Supported: ``SELECT [*|expr [AS alias], ...] FROM <table> [alias] [WHERE cond] [ORDER BY expr [ASC|DESC],
...] [FETCH FIRST n ROWS ONLY]`` with ``AND``/``OR``/``NOT``, parentheses, ``= <> != < <= > >=``,
``IS [NOT] NULL``, ``[NOT] IN (...)``, ``[NOT] BETWEEN``, ``[NOT] LIKE``, ``?`` parameters and the
functions ``TO_TIMESTAMP``, ``TO_DATE``, ``TO_CHAR``, ``NVL``/``COALESCE``, ``UPPER``, ``LOWER``,
``BUILTIN.CF``, ``BUILTIN.DF`` and ``SYSDATE``. Joins, grouping and sub-queries are refused with
``SuiteQLError`` rather than answered wrongly.

Like NetSuite, values come back as strings under lower-case keys, NULL columns are left out of the
row, and a bare datetime column is printed in the user's date format (``M/D/YYYY``) without its
time — which is why clients wrap it in ``TO_CHAR``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

Row = dict[str, Any]


class SuiteQLError(ValueError):
    """The query cannot be run; the message is shown to the client in ``o:errorDetails``."""


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^']|'')*')
  | (?P<qid>"[^"]+")
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<id>[A-Za-z_][\w$#]*(?:\.[A-Za-z_][\w$#]*)*)
  | (?P<op><>|!=|>=|<=|\|\||[=<>(),*?])
""", re.VERBOSE)
KEYWORDS = frozenset({
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IS", "NULL", "IN", "BETWEEN", "LIKE", "ORDER", "BY",
    "ASC", "DESC", "AS", "FETCH", "FIRST", "NEXT", "ROWS", "ROW", "ONLY",
})
UNSUPPORTED = frozenset({"JOIN", "GROUP", "HAVING", "UNION", "DISTINCT", "LEFT", "INNER", "OUTER", "CASE",
                         "WITH", "MINUS", "INTERSECT", "OFFSET", "LIMIT", "TOP"})


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper()


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if match is None:
            raise SuiteQLError(f"unexpected character {query[pos]!r} at position {pos}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


# -- AST ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lit:
    value: Any


@dataclass(frozen=True, slots=True)
class Param:
    index: int


@dataclass(frozen=True, slots=True)
class Col:
    qualifier: str | None
    name: str


@dataclass(frozen=True, slots=True)
class Func:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # AND / OR
    parts: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Not:
    inner: Any


@dataclass(frozen=True, slots=True)
class IsNull:
    inner: Any
    negated: bool


@dataclass(frozen=True, slots=True)
class InList:
    inner: Any
    items: tuple[Any, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class Between:
    inner: Any
    low: Any
    high: Any
    negated: bool


@dataclass(frozen=True, slots=True)
class Like:
    inner: Any
    pattern: Any
    negated: bool


@dataclass(frozen=True, slots=True)
class Select:
    items: tuple[tuple[Any, str], ...] | None  # None = SELECT *
    table: str
    alias: str | None
    where: Any
    order: tuple[tuple[Any, bool], ...]
    fetch_first: int | None
    params: int


class Parser:
    def __init__(self, query: str) -> None:
        self.tokens = tokenize(query)
        self.i = 0
        self.params = 0

    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def at(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind in ("id", "op") and tok.upper in words

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise SuiteQLError("the query ends too early")
        self.i += 1
        return tok

    def expect(self, word: str) -> Token:
        tok = self.peek()
        if tok is None or tok.upper != word:
            found = "the end of the query" if tok is None else repr(tok.text)
            raise SuiteQLError(f"expected {word} but found {found}")
        return self.take()

    def parse(self) -> Select:
        for tok in self.tokens:
            if tok.kind == "id" and tok.upper in UNSUPPORTED:
                raise SuiteQLError(f"{tok.upper} is not supported by the NetSuite sandbox's SuiteQL subset")
            if tok.kind == "id" and tok.upper == "SELECT" and tok is not self.tokens[0]:
                raise SuiteQLError("sub-queries are not supported by the NetSuite sandbox's SuiteQL subset")
        self.expect("SELECT")
        items: list[tuple[Any, str]] | None = []
        if self.at("*"):
            self.take()
            items = None
        else:
            while True:
                expr = self.expr()
                alias = self.alias(expr, len(items) + 1)
                items.append((expr, alias))
                if not self.at(","):
                    break
                self.take()
        self.expect("FROM")
        table_tok = self.take()
        if table_tok.kind != "id" or "." in table_tok.text or table_tok.upper in KEYWORDS:
            raise SuiteQLError(f"expected a table name after FROM, found {table_tok.text!r}")
        table_alias = None
        nxt = self.peek()
        if nxt is not None and nxt.kind == "id" and nxt.upper not in KEYWORDS:
            table_alias = self.take().text.lower()
        elif self.at("AS"):
            raise SuiteQLError("Oracle SQL does not allow AS before a table alias")
        where = None
        if self.at("WHERE"):
            self.take()
            where = self.condition()
        order: list[tuple[Any, bool]] = []
        if self.at("ORDER"):
            self.take()
            self.expect("BY")
            while True:
                expr = self.expr()
                descending = False
                if self.at("ASC", "DESC"):
                    descending = self.take().upper == "DESC"
                order.append((expr, descending))
                if not self.at(","):
                    break
                self.take()
        fetch_first = None
        if self.at("FETCH"):
            self.take()
            if not self.at("FIRST", "NEXT"):
                raise SuiteQLError("expected FIRST after FETCH")
            self.take()
            count = self.take()
            if count.kind != "num" or "." in count.text:
                raise SuiteQLError("FETCH FIRST needs a whole number")
            fetch_first = int(count.text)
            if not self.at("ROWS", "ROW"):
                raise SuiteQLError("expected ROWS ONLY after FETCH FIRST n")
            self.take()
            self.expect("ONLY")
        if self.peek() is not None:
            raise SuiteQLError(f"unexpected {self.peek().text!r} at position {self.peek().pos}")  # type: ignore[union-attr]
        return Select(tuple(items) if items is not None else None, table_tok.text.lower(), table_alias,
                      where, tuple(order), fetch_first, self.params)

    def alias(self, expr: Any, position: int) -> str:
        if self.at("AS"):
            self.take()
            tok = self.take()
            if tok.kind not in ("id", "qid"):
                raise SuiteQLError(f"expected an alias after AS, found {tok.text!r}")
            return tok.text.strip('"').lower()
        tok = self.peek()
        if tok is not None and tok.kind == "id" and tok.upper not in KEYWORDS:
            return self.take().text.lower()
        if isinstance(expr, Col):
            return expr.name
        return f"expr{position}"

    # conditions: OR > AND > NOT > predicate
    def condition(self) -> Any:
        parts = [self.conjunction()]
        while self.at("OR"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else BoolOp("OR", tuple(parts))

    def conjunction(self) -> Any:
        parts = [self.negation()]
        while self.at("AND"):
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else BoolOp("AND", tuple(parts))

    def negation(self) -> Any:
        if self.at("NOT"):
            self.take()
            return Not(self.negation())
        return self.predicate()

    def predicate(self) -> Any:
        if self.at("(") and self._parenthesised_condition():
            self.take()
            inner = self.condition()
            self.expect(")")
            return inner
        left = self.expr()
        negated = False
        if self.at("IS"):
            self.take()
            if self.at("NOT"):
                self.take()
                negated = True
            self.expect("NULL")
            return IsNull(left, negated)
        if self.at("NOT"):
            self.take()
            negated = True
        if self.at("IN"):
            self.take()
            self.expect("(")
            items = [self.expr()]
            while self.at(","):
                self.take()
                items.append(self.expr())
            self.expect(")")
            return InList(left, tuple(items), negated)
        if self.at("BETWEEN"):
            self.take()
            low = self.expr()
            self.expect("AND")
            return Between(left, low, self.expr(), negated)
        if self.at("LIKE"):
            self.take()
            return Like(left, self.expr(), negated)
        if negated:
            raise SuiteQLError("NOT must be followed by IN, BETWEEN or LIKE here")
        if self.at("=", "<>", "!=", "<", "<=", ">", ">="):
            op = self.take().text
            return BinOp("<>" if op == "!=" else op, left, self.expr())
        tok = self.peek()
        raise SuiteQLError(f"expected a comparison after {self._describe(left)}, found "
                           f"{'the end of the query' if tok is None else repr(tok.text)}")

    def _parenthesised_condition(self) -> bool:
        """Tell ``(a = 1 OR b = 2)`` from ``(a) = 1``: an expression never contains a comparison."""
        depth = 0
        for tok in self.tokens[self.i:]:
            if tok.text == "(":
                depth += 1
            elif tok.text == ")":
                depth -= 1
                if depth == 0:
                    return False
            elif depth >= 1 and tok.kind in ("id", "op") and tok.upper in (
                    "=", "<>", "!=", "<", "<=", ">", ">=", "AND", "OR", "NOT", "IS", "IN", "BETWEEN", "LIKE"):
                return True
        return False

    @staticmethod
    def _describe(expr: Any) -> str:
        if isinstance(expr, Col):
            return expr.name
        if isinstance(expr, Func):
            return f"{expr.name}(...)"
        return "the value"

    def expr(self) -> Any:
        left = self.operand()
        while self.at("||"):
            self.take()
            left = Func("CONCAT", (left, self.operand()))
        return left

    def operand(self) -> Any:
        tok = self.take()
        if tok.kind == "str":
            return Lit(tok.text[1:-1].replace("''", "'"))
        if tok.kind == "num":
            return Lit(Decimal(tok.text) if "." in tok.text else int(tok.text))
        if tok.text == "?":
            self.params += 1
            return Param(self.params - 1)
        if tok.text == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        if tok.kind == "id" and tok.upper == "NULL":
            return Lit(None)
        if tok.kind == "id" and tok.upper == "SYSDATE":
            return Func("SYSDATE", ())
        if tok.kind == "id" and tok.upper not in KEYWORDS:
            if self.at("("):
                self.take()
                args: list[Any] = []
                if not self.at(")"):
                    args.append(self.expr())
                    while self.at(","):
                        self.take()
                        args.append(self.expr())
                self.expect(")")
                return Func(tok.upper, tuple(args))
            qualifier, _, name = tok.text.lower().rpartition(".")
            return Col(qualifier or None, name)
        if tok.kind == "qid":
            return Col(None, tok.text.strip('"').lower())
        raise SuiteQLError(f"unexpected {tok.text!r} at position {tok.pos}")


# -- date formats ------------------------------------------------------------------------------------

_FORMAT_TOKENS = [("YYYY", "%Y"), ("HH24", "%H"), ("HH12", "%I"), ("MM", "%m"), ("DD", "%d"), ("MI", "%M"),
                  ("SS", "%S"), ("HH", "%I"), ("AM", "%p"), ("PM", "%p")]


def oracle_format(fmt: str) -> str:
    """Oracle datetime format model → ``strftime`` pattern, for the elements SuiteQL users write."""
    out: list[str] = []
    i = 0
    while i < len(fmt):
        if fmt[i] == '"':
            end = fmt.find('"', i + 1)
            if end < 0:
                raise SuiteQLError(f"unterminated quoted text in date format {fmt!r}")
            out.append(fmt[i + 1:end].replace("%", "%%"))
            i = end + 1
            continue
        for element, directive in _FORMAT_TOKENS:
            if fmt[i:i + len(element)].upper() == element:
                out.append(directive)
                i += len(element)
                break
        else:
            if fmt[i].isalnum():
                raise SuiteQLError(f"date format element at {fmt[i:]!r} is not supported in {fmt!r}")
            out.append(fmt[i])
            i += 1
    return "".join(out)


def display_date(value: datetime | date) -> str:
    return f"{value.month}/{value.day}/{value.year}"


def render(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, datetime | date):
        return display_date(value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


# -- evaluation --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Table:
    """Columns are lower-case names; ``display`` gives ``BUILTIN.DF``/``CF`` values per column."""

    name: str
    columns: frozenset[str]
    rows: Callable[[], Iterable[Row]]
    open_prefixes: tuple[str, ...] = ()
    # (WHERE, params) → the rows that can match, from an index, or None to scan ``rows()``; the WHERE
    # condition still runs on what it returns (see ``equal_values``).
    narrow: Callable[[Any, Sequence[Any]], Iterable[Row] | None] | None = None

    def has(self, column: str) -> bool:
        return column in self.columns or column.startswith(self.open_prefixes)


def equal_values(where: Any, column: str, params: Sequence[Any]) -> list[Any] | None:
    """The values ``column`` must equal for a row to pass ``where``: from a top-level ``AND`` term
    ``column = v`` or ``column IN (v, ...)`` with literal or ``?`` values; ``None`` when it cannot tell."""
    terms = where.parts if isinstance(where, BoolOp) and where.op == "AND" else (where,)
    for term in terms:
        if isinstance(term, BinOp) and term.op == "=" and isinstance(term.left, Col) and term.left.name == column:
            items: tuple[Any, ...] = (term.right,)
        elif isinstance(term, InList) and not term.negated and isinstance(term.inner, Col) \
                and term.inner.name == column:
            items = term.items
        else:
            continue
        if all(isinstance(i, Lit | Param) for i in items):
            return [i.value if isinstance(i, Lit) else params[i.index] for i in items]
    return None


class Evaluator:
    def __init__(self, select: Select, table: Table, params: Sequence[Any], now: datetime) -> None:
        self.select = select
        self.table = table
        self._in_sets: dict[int, frozenset[Any] | None] = {}
        self.params = list(params)
        self.now = now
        self.aliases = {alias: expr for expr, alias in select.items or ()}
        if len(self.params) != select.params:
            raise SuiteQLError(f"the query has {select.params} ? placeholders but {len(self.params)} params")
        self._check_columns()

    def _check_columns(self) -> None:
        names = {self.table.name, self.select.alias}

        def walk(node: Any, allow_alias: bool) -> None:
            if isinstance(node, Col):
                if node.qualifier is not None and node.qualifier not in names:
                    raise SuiteQLError(f"unknown table alias {node.qualifier!r}")
                if node.qualifier is None and allow_alias and node.name in self.aliases:
                    return
                if not self.table.has(node.name):
                    raise SuiteQLError(f"Search error occurred: Field '{node.name}' for record "
                                       f"'{self.table.name}' was not found.")
            elif isinstance(node, Func):
                for arg in node.args:
                    walk(arg, allow_alias)
            elif isinstance(node, BinOp):
                walk(node.left, allow_alias)
                walk(node.right, allow_alias)
            elif isinstance(node, BoolOp):
                for part in node.parts:
                    walk(part, allow_alias)
            elif isinstance(node, Not | IsNull):
                walk(node.inner, allow_alias)
            elif isinstance(node, InList):
                walk(node.inner, allow_alias)
                for item in node.items:
                    walk(item, allow_alias)
            elif isinstance(node, Between):
                for part in (node.inner, node.low, node.high):
                    walk(part, allow_alias)
            elif isinstance(node, Like):
                walk(node.inner, allow_alias)
                walk(node.pattern, allow_alias)

        for expr, _ in self.select.items or ():
            walk(expr, False)
        walk(self.select.where, False)
        for expr, _ in self.select.order:
            walk(expr, True)

    def value(self, node: Any, row: Row, allow_alias: bool = False) -> Any:
        if isinstance(node, Lit):
            return node.value
        if isinstance(node, Param):
            return self.params[node.index]
        if isinstance(node, Col):
            if allow_alias and node.qualifier is None and node.name in self.aliases \
                    and not self.table.has(node.name):
                return self.value(self.aliases[node.name], row)
            return row.get(node.name)
        if isinstance(node, Func):
            return self.call(node, row)
        truth = self.truth(node, row)
        return None if truth is None else truth

    def call(self, node: Func, row: Row) -> Any:
        name, args = node.name, node.args
        if name == "SYSDATE":
            return self.now
        if name in ("BUILTIN.CF", "BUILTIN.DF"):
            if len(args) != 1 or not isinstance(args[0], Col):
                raise SuiteQLError(f"{name} takes one column")
            key = ("cf:" if name == "BUILTIN.CF" else "df:") + args[0].name
            return row.get(key, row.get(args[0].name))
        values = [self.value(arg, row) for arg in args]
        if name in ("NVL", "COALESCE"):
            if len(values) < 2:
                raise SuiteQLError(f"{name} takes at least two arguments")
            return next((v for v in values if v is not None), None)
        if name in ("UPPER", "LOWER"):
            if len(values) != 1:
                raise SuiteQLError(f"{name} takes one argument")
            text = render(values[0])
            return None if text is None else (text.upper() if name == "UPPER" else text.lower())
        if name == "CONCAT":
            return "".join(render(v) or "" for v in values)
        if name in ("TO_TIMESTAMP", "TO_DATE"):
            if len(values) != 2 or not all(isinstance(v, str) for v in values):
                raise SuiteQLError(f"{name} needs a text value and a format, e.g. "
                                   f"{name}('2024-01-31 10:00:00', 'YYYY-MM-DD HH24:MI:SS')")
            pattern = oracle_format(values[1])
            try:
                parsed = datetime.strptime(values[0], pattern)
            except ValueError as exc:
                raise SuiteQLError(f"{name}: {values[0]!r} does not match the format {values[1]!r}") from exc
            return parsed.replace(tzinfo=UTC)
        if name == "TO_CHAR":
            if not 1 <= len(values) <= 2:
                raise SuiteQLError("TO_CHAR takes a value and an optional format")
            value = values[0]
            if value is None:
                return None
            if len(values) == 2 and isinstance(value, datetime | date):
                if not isinstance(values[1], str):
                    raise SuiteQLError("TO_CHAR's format must be text")
                return value.strftime(oracle_format(values[1]))
            return render(value)
        raise SuiteQLError(f"function {name} is not supported by the NetSuite sandbox's SuiteQL subset")

    @staticmethod
    def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
        if isinstance(left, bool) or isinstance(right, bool):
            return render(left), render(right)
        numeric = (int, Decimal)
        if isinstance(left, numeric) and isinstance(right, str):
            try:
                return Decimal(left), Decimal(right)
            except ArithmeticError as exc:
                raise SuiteQLError(f"cannot compare the number {left} with {right!r}") from exc
        if isinstance(left, str) and isinstance(right, numeric):
            right, left = Evaluator._comparable(right, left)
            return left, right
        if isinstance(left, numeric) and isinstance(right, numeric):
            return Decimal(left), Decimal(right)
        if isinstance(left, datetime) != isinstance(right, datetime):
            raise SuiteQLError("compare dates with dates: wrap text in TO_TIMESTAMP(...) or TO_DATE(...)")
        return left, right

    def compare(self, op: str, left: Any, right: Any) -> bool | None:
        if left is None or right is None:
            return None
        a, b = self._comparable(left, right)
        try:
            return {"=": a == b, "<>": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        except TypeError as exc:
            raise SuiteQLError(f"cannot compare {left!r} with {right!r}") from exc

    def truth(self, node: Any, row: Row) -> bool | None:
        if isinstance(node, BoolOp):
            results = [self.truth(part, row) for part in node.parts]
            if node.op == "AND":
                return False if False in results else (None if None in results else True)
            return True if True in results else (None if None in results else False)
        if isinstance(node, Not):
            inner = self.truth(node.inner, row)
            return None if inner is None else not inner
        if isinstance(node, BinOp):
            return self.compare(node.op, self.value(node.left, row), self.value(node.right, row))
        if isinstance(node, IsNull):
            return (self.value(node.inner, row) is None) != node.negated
        if isinstance(node, InList):
            value = self.value(node.inner, row)
            members = self._members(node)
            if members is not None and isinstance(value, type(next(iter(members), value))) \
                    and not isinstance(value, bool):
                # Same-typed literal list: a set lookup answers exactly what the comparisons would.
                return (value in members) != node.negated
            results = [self.compare("=", value, self.value(item, row)) for item in node.items]
            found = True if True in results else (None if None in results else False)
            return None if found is None else found != node.negated
        if isinstance(node, Between):
            value = self.value(node.inner, row)
            low = self.compare(">=", value, self.value(node.low, row))
            high = self.compare("<=", value, self.value(node.high, row))
            inside = None if low is None or high is None else (low and high)
            return None if inside is None else inside != node.negated
        if isinstance(node, Like):
            value, pattern = render(self.value(node.inner, row)), self.value(node.pattern, row)
            if value is None or pattern is None:
                return None
            regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in str(pattern))
            return (re.fullmatch(regex, value, re.S) is not None) != node.negated
        raise SuiteQLError("a WHERE condition must be a comparison")

    def _members(self, node: InList) -> frozenset[Any] | None:
        """The IN list as a set when every item is a literal/parameter of one type (all ``str`` or all
        ``int``): big ``IN`` lists (hundreds of item ids) then cost one lookup per row."""
        cache = self._in_sets
        if id(node) not in cache:
            values = [self.value(i, {}) for i in node.items] if all(
                isinstance(i, Lit | Param) for i in node.items) else []
            kinds = {type(v) for v in values}
            cache[id(node)] = frozenset(values) if values and len(kinds) == 1 and kinds <= {str, int} else None
        return cache[id(node)]

    def run(self) -> list[dict[str, str]]:
        narrowed = self.table.narrow(self.select.where, self.params) if self.table.narrow else None
        rows = [row for row in (self.table.rows() if narrowed is None else narrowed)
                if self.select.where is None or self.truth(self.select.where, row) is True]
        for expr, descending in reversed(self.select.order):
            def key(row: Row, expr: Any = expr) -> tuple[int, Any]:
                value = self.value(expr, row, allow_alias=True)
                if isinstance(value, int | Decimal) and not isinstance(value, bool):
                    value = Decimal(value)
                elif value is not None and not isinstance(value, datetime | str):
                    value = render(value)
                return (1, "") if value is None else (0, value)
            try:
                nulls = [r for r in rows if key(r)[0]]
                present = sorted((r for r in rows if not key(r)[0]), key=key, reverse=descending)
            except TypeError as exc:
                raise SuiteQLError("ORDER BY mixes values that cannot be compared") from exc
            rows = present + nulls  # Oracle puts NULLs last for ASC, first for DESC
            if descending:
                rows = nulls + present
        if self.select.fetch_first is not None:
            rows = rows[:self.select.fetch_first]
        out: list[dict[str, str]] = []
        for row in rows:
            if self.select.items is None:
                values = {k: row[k] for k in sorted(row) if ":" not in k}
            else:
                values = {alias: self.value(expr, row) for expr, alias in self.select.items}
            out.append({k: text for k, v in values.items() if (text := render(v)) is not None})
        return out


def execute(query: str, tables: dict[str, Table], params: Sequence[Any] = (), *,
            now: datetime | None = None) -> list[dict[str, str]]:
    select = Parser(query).parse()
    table = tables.get(select.table)
    if table is None:
        raise SuiteQLError(f"table {select.table!r} is not available in the NetSuite sandbox "
                           f"(supported: {', '.join(sorted(tables))})")
    return Evaluator(select, table, params, now or datetime.now(UTC)).run()
