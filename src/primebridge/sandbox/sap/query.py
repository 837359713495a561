"""OData V2 URL grammar for the sandbox: resource paths, key predicates and system query options.

Only what SAP Gateway clients use against API_SALES_ORDER_SRV: ``$filter`` with comparisons,
``and``/``or``/``not``, parentheses, ``substringof``/``startswith``/``endswith`` and typed
literals (a DateTimeOffset property only compares with ``datetimeoffset'…'``, as in Gateway);
``$orderby``, ``$select``/``$expand`` trees. Every error is an ``ODataError`` (400) naming the token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from primebridge.connectors.sap.values import parse_datetime
from primebridge.sandbox.sap.errors import NOT_FOUND, ODataError
from primebridge.sandbox.sap.schema import ENTITY_TYPES, EntityType

Row = dict[str, Any]
Tree = dict[str, "Tree"]


def bad_request(message: str) -> ODataError:
    return ODataError(400, message)


# -- resource path ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    keys: dict[str, str] | None = None  # None: no predicate; {"": v}: positional single key


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts, current, quoted = [], [], False
    for char in text:
        if char == "'":
            quoted = not quoted  # a doubled quote toggles twice, which is what we want
        if char == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def string_value(literal: str, what: str) -> str:
    literal = literal.strip()
    if len(literal) < 2 or literal[0] != "'" or literal[-1] != "'":
        raise bad_request(f"Invalid key value {literal!r} for {what}: expected a quoted string")
    return literal[1:-1].replace("''", "'")


def parse_resource_path(path: str) -> list[Segment]:
    segments = []
    for raw in _split_outside_quotes(path.strip("/"), "/"):
        match = re.fullmatch(r"([A-Za-z_$][A-Za-z0-9_]*)(?:\((.*)\))?", raw, re.S)
        if not match:
            raise ODataError(404, f"Resource not found for segment '{raw}'", code=NOT_FOUND)
        name, predicate = match.groups()
        keys: dict[str, str] | None = None
        if predicate is not None:
            keys = {}
            for part in _split_outside_quotes(predicate, ","):
                if "=" in part.split("'", 1)[0]:
                    key, value = part.split("=", 1)
                    keys[key.strip()] = string_value(value, f"{name}.{key.strip()}")
                else:
                    keys[""] = string_value(part, name)
        segments.append(Segment(name, keys))
    return segments


def resolve_keys(etype: EntityType, keys: dict[str, str]) -> dict[str, str]:
    if "" in keys:
        if len(keys) != 1 or len(etype.keys) != 1:
            raise bad_request(f"Key predicate of {etype.set_name} needs the keys {', '.join(etype.keys)}")
        return {etype.keys[0]: keys[""]}
    if set(keys) != set(etype.keys):
        raise bad_request(f"Key predicate of {etype.set_name} needs exactly the keys {', '.join(etype.keys)}")
    return {k: keys[k] for k in etype.keys}


# -- $filter ----------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<typed>(?:datetimeoffset|datetime|guid|time)'[^']*')
    | (?P<string>'(?:[^']|'')*')
    | (?P<number>-?\d+(?:\.\d+)?[mMdDfFlL]?)
    | (?P<punct>[(),])
    | (?P<word>[A-Za-z_][A-Za-z0-9_/]*)
    )""", re.X)
_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}
_FUNCTIONS = {"substringof", "startswith", "endswith", "tolower", "toupper"}


@dataclass(frozen=True, slots=True)
class _Lit:
    type: str
    value: Any


@dataclass(frozen=True, slots=True)
class _PropRef:
    name: str
    type: str


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise bad_request(f"Invalid $filter near {text[pos:pos + 30]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _FilterParser:
    def __init__(self, text: str, etype: EntityType) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.etype = etype
        self.text = text

    def parse(self) -> Callable[[Row], bool]:
        node = self._or()
        if self.pos != len(self.tokens):
            raise bad_request(f"Invalid $filter: unexpected {self.tokens[self.pos][1]!r}")
        return node

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, value: str | None = None) -> tuple[str, str]:
        token = self._peek()
        if token is None or (value is not None and token[1] != value):
            raise bad_request(f"Invalid $filter {self.text!r}: expected {value or 'more input'}")
        self.pos += 1
        return token

    def _or(self) -> Callable[[Row], bool]:
        left = self._and()
        while (tok := self._peek()) and tok == ("word", "or"):
            self.pos += 1
            right = self._and()
            left = (lambda a, b: lambda row: a(row) or b(row))(left, right)
        return left

    def _and(self) -> Callable[[Row], bool]:
        left = self._unary()
        while (tok := self._peek()) and tok == ("word", "and"):
            self.pos += 1
            right = self._unary()
            left = (lambda a, b: lambda row: a(row) and b(row))(left, right)
        return left

    def _unary(self) -> Callable[[Row], bool]:
        if self._peek() == ("word", "not"):
            self.pos += 1
            inner = self._unary()
            return lambda row: not inner(row)
        if self._peek() == ("punct", "("):
            self.pos += 1
            inner = self._or()
            self._take(")")
            return inner
        left = self._operand()
        tok = self._peek()
        if tok and tok[0] == "word" and tok[1] in _COMPARE:
            self.pos += 1
            right = self._operand()
            return _comparison(tok[1], left, right)
        if isinstance(left, tuple) and left[0] == "bool":
            fn = left[1]
            return lambda row: bool(fn(row))
        raise bad_request(f"Invalid $filter {self.text!r}: expected a comparison")

    def _operand(self) -> Any:
        kind, value = self._take()
        if kind == "string":
            return _Lit("Edm.String", value[1:-1].replace("''", "'"))
        if kind == "typed":
            prefix, raw = value.split("'", 1)
            type_ = {"datetimeoffset": "Edm.DateTimeOffset", "datetime": "Edm.DateTime",
                     "guid": "Edm.Guid", "time": "Edm.Time"}[prefix]
            if type_ in ("Edm.DateTimeOffset", "Edm.DateTime"):
                try:
                    return _Lit(type_, parse_datetime(raw[:-1]))
                except ValueError:
                    raise bad_request(f"Invalid {prefix} literal {value!r} in $filter") from None
            return _Lit(type_, raw[:-1])
        if kind == "number":
            try:
                return _Lit("number", Decimal(value.rstrip("mMdDfFlL")))
            except InvalidOperation:
                raise bad_request(f"Invalid number {value!r} in $filter") from None
        if kind == "word":
            if value in ("true", "false"):
                return _Lit("Edm.Boolean", value == "true")
            if value == "null":
                return _Lit("null", None)
            if value in _FUNCTIONS:
                return self._function(value)
            prop = self.etype.props.get(value)
            if prop is None:
                raise bad_request(f"Property '{value}' not found in type '{self.etype.qualified_type}'")
            if not prop.filterable:
                raise bad_request(f"Property '{value}' of '{self.etype.type_name}' is not filterable")
            return _PropRef(value, prop.type)
        raise bad_request(f"Invalid $filter {self.text!r}: unexpected {value!r}")

    def _function(self, name: str) -> Any:
        self._take("(")
        args = [self._operand()]
        while self._peek() == ("punct", ","):
            self.pos += 1
            args.append(self._operand())
        self._take(")")
        getters = [_getter(a) for a in args]
        if name in ("tolower", "toupper") and len(args) == 1:
            conv = str.lower if name == "tolower" else str.upper
            return ("str", lambda row: conv(str(getters[0](row) or "")))
        if len(args) != 2:
            raise bad_request(f"Function {name} in $filter takes 2 arguments")
        a, b = getters
        if name == "substringof":
            return ("bool", lambda row: str(a(row) or "") in str(b(row) or ""))
        if name == "startswith":
            return ("bool", lambda row: str(a(row) or "").startswith(str(b(row) or "")))
        return ("bool", lambda row: str(a(row) or "").endswith(str(b(row) or "")))


def _getter(operand: Any) -> Callable[[Row], Any]:
    if isinstance(operand, _Lit):
        value = operand.value
        return lambda row: value
    if isinstance(operand, _PropRef):
        name = operand.name
        return lambda row: row.get(name)
    if isinstance(operand, tuple):
        return operand[1]  # type: ignore[no-any-return]
    raise bad_request("Invalid $filter operand")


def _check_types(left: Any, right: Any) -> None:
    prop, lit = (left, right) if isinstance(left, _PropRef) else (right, left)
    if not isinstance(prop, _PropRef) or not isinstance(lit, _Lit) or lit.type == "null":
        return
    ok = {
        "Edm.String": {"Edm.String"},
        "Edm.DateTimeOffset": {"Edm.DateTimeOffset"},
        "Edm.DateTime": {"Edm.DateTime"},
        "Edm.Decimal": {"number"},
        "Edm.Boolean": {"Edm.Boolean"},
    }.get(prop.type, {lit.type})
    if lit.type not in ok:
        raise bad_request(f"Invalid filter: property {prop.name} ({prop.type}) cannot be compared with a "
                          f"{lit.type} literal")


def _comparable(value: Any) -> Any:
    if isinstance(value, datetime | Decimal | bool | str):
        return value
    if isinstance(value, int | float):
        return Decimal(str(value))
    return value


def _comparison(op: str, left: Any, right: Any) -> Callable[[Row], bool]:
    _check_types(left, right)
    get_l, get_r = _getter(left), _getter(right)

    def compare(row: Row) -> bool:
        a, b = _comparable(get_l(row)), _comparable(get_r(row))
        if op == "eq":
            return bool(a == b)
        if op == "ne":
            return bool(a != b)
        if a is None or b is None:
            return False
        try:
            return bool({"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op])
        except TypeError:
            return False

    return compare


def compile_filter(text: str, etype: EntityType) -> Callable[[Row], bool]:
    return _FilterParser(text, etype).parse()


# -- $orderby, $select, $expand ---------------------------------------------------------------

def sort_rows(rows: list[Row], orderby: str, etype: EntityType) -> list[Row]:
    keys: list[tuple[str, bool]] = []
    for part in orderby.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise bad_request(f"Invalid $orderby clause {part.strip()!r}")
        if words[0] not in etype.props:
            raise bad_request(f"Property '{words[0]}' not found in type '{etype.qualified_type}'")
        keys.append((words[0], len(words) == 2 and words[1] == "desc"))
    result = list(rows)
    for name, desc in reversed(keys):
        # None sorts first ascending; a tuple keeps unlike values comparable.
        result.sort(key=lambda row, n=name: (row.get(n) is not None,
                                             row.get(n) if row.get(n) is not None else 0), reverse=desc)
    return result


def path_tree(text: str | None) -> Tree:
    tree: Tree = {}
    for path in (text or "").split(","):
        node = tree
        for part in (p.strip() for p in path.strip().split("/") if p.strip()):
            node = node.setdefault(part, {})
    return tree


def validate_expand(tree: Tree, etype: EntityType) -> None:
    for name, sub in tree.items():
        nav = etype.navs.get(name)
        if nav is None:
            raise bad_request(f"Navigation property '{name}' not found in type '{etype.qualified_type}' "
                              f"(or not modelled by the sandbox)")
        validate_expand(sub, ENTITY_TYPES[nav.target])


def validate_select(tree: Tree, etype: EntityType, expand: Tree) -> None:
    for name, sub in tree.items():
        if name == "*" or name in etype.props:
            if sub:
                raise bad_request(f"Invalid $select path below property '{name}'")
            continue
        nav = etype.navs.get(name)
        if nav is None:
            raise bad_request(f"Property '{name}' not found in type '{etype.qualified_type}'")
        if sub and name not in expand:
            raise bad_request(f"$select path '{name}/…' needs '{name}' in $expand")
        validate_select(sub, ENTITY_TYPES[nav.target], expand.get(name, {}))
