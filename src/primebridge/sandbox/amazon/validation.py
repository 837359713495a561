"""The documented ``createOrder``/``updateOrder`` rules of Buy with Prime, as pure checks.

Error *types* are the documented classifications (reference §2.8); apart from
``AliasValueAlreadyExists`` and ``PackageInformationDetailIdNotFound`` the *codes* are not published,
so the ones below are descriptive names of our own. Every check raises ``SandboxFault``, which the
app turns into a GraphQL error ``{message, path, extensions: {classification: {type, code}}}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

MAX_ALIASES = 5
MAX_ORDER_LINKS = 5
MAX_PRIME_LINES = 20
MAX_OTHER_AMAZON_LINES = 20
IDENTIFIER_KINDS = ("productId", "externalId", "sku", "amazonSku")
REQUIRED_ADDRESS_FIELDS = ("name", "streetAddress", "locality", "countryCode", "postalCode")

JSON = dict[str, Any]


class SandboxFault(Exception):
    """A BwP GraphQL error: classification type, code and message."""

    def __init__(self, type_: str, code: str, message: str) -> None:
        super().__init__(message)
        self.type = type_
        self.code = code
        self.message = message

    def extensions(self) -> JSON:
        return {"classification": {"type": self.type, "code": self.code}}


def invalid(code: str, message: str) -> SandboxFault:
    return SandboxFault("ValidationError", code, message)


def alias_key(alias: JSON) -> tuple[str, str]:
    return str(alias["aliasType"]), str(alias["aliasId"])


def check_new_aliases(existing: Iterable[JSON], new: list[JSON] | None, where: str) -> list[JSON]:
    """Append-only aliases: no duplicates, at most five in total; returns the aliases to add."""
    known = {alias_key(a) for a in existing}
    added: list[JSON] = []
    for alias in new or []:
        if alias is None:
            continue
        key = alias_key(alias)
        if any(alias_key(a) == key for a in added):
            raise invalid("DuplicateAlias", f"{where}: alias {key[0]}={key[1]} is given twice")
        if key not in known:
            added.append({"aliasType": key[0], "aliasId": key[1]})
    if len(known) + len(added) > MAX_ALIASES:
        raise invalid("AliasLimitExceeded",
                      f"{where}: at most {MAX_ALIASES} aliases are allowed, this would make {len(known) + len(added)}")
    return added


def provider(line: JSON) -> str:
    offer = line.get("selectedDeliveryOffer") or {}
    chosen = offer.get("details") or offer.get("summary") or {}
    return str(chosen.get("deliveryProvider"))


def is_prime(line: JSON) -> bool:
    details = (line.get("selectedDeliveryOffer") or {}).get("details") or {}
    return provider(line) == "AMAZON" and bool((details.get("deliveryTerms") or {}).get("isPrimeEligible"))


def product_identifier(product: JSON | None) -> tuple[str, str] | None:
    """``(kind, value)`` of the line's single product identifier, ``None`` when absent."""
    identifier = (product or {}).get("identifier") or {}
    given = [(kind, identifier[kind]) for kind in IDENTIFIER_KINDS if identifier.get(kind) is not None]
    if not given:
        return None
    if len(given) > 1:
        raise invalid("InvalidProductIdentifier",
                      f"product.identifier must have exactly one of {', '.join(IDENTIFIER_KINDS)}, "
                      f"got {', '.join(kind for kind, _ in given)}")
    kind, value = given[0]
    if kind == "amazonSku":
        value = value.get("value")
    if not isinstance(value, str) or not value:
        raise invalid("InvalidProductIdentifier", f"product.identifier.{kind} is empty")
    return kind, value


def check_create_input(data: JSON, *, known_product: Callable[[str, str], bool]) -> None:
    """Everything ``createOrder`` checks before touching state (alias uniqueness is the caller's)."""
    lines = [line for line in data.get("lineItems") or [] if line is not None]
    if not lines:
        raise invalid("MissingLineItems", "an order needs at least one line item")
    check_new_aliases((), data.get("aliases"), "order")
    if len(data.get("orderLinks") or []) > MAX_ORDER_LINKS:
        raise invalid("OrderLinkLimitExceeded", f"at most {MAX_ORDER_LINKS} orderLinks are allowed")
    for index, line in enumerate(lines):
        _check_line(index, line, known_product)
    prime = sum(1 for line in lines if is_prime(line))
    # 40 lines at most: 20 Buy with Prime eligible and 20 others, merchant-fulfilled lines included.
    other = len(lines) - prime
    if prime > MAX_PRIME_LINES or other > MAX_OTHER_AMAZON_LINES:
        raise invalid("LineItemLimitExceeded",
                      f"{prime} Prime and {other} other line items; at most "
                      f"{MAX_PRIME_LINES} of each are allowed")
    if prime and not ((data.get("shopperIdentity") or {}).get("lwaAccessToken") or {}).get("value"):
        raise invalid("MissingShopperIdentity",
                      "Prime line items need shopperIdentity.lwaAccessToken.value")
    if any(provider(line) == "AMAZON" for line in lines):
        address = (data.get("recipient") or {}).get("deliveryAddress") or {}
        missing = [name for name in REQUIRED_ADDRESS_FIELDS if not address.get(name)]
        if missing:
            raise invalid("MissingDeliveryAddress",
                          f"Amazon-fulfilled line items need recipient.deliveryAddress with "
                          f"{', '.join(missing)}")


def _check_line(index: int, line: JSON, known_product: Callable[[str, str], bool]) -> None:
    where = f"lineItems[{index}]"
    if line["amount"]["value"] <= 0:
        raise invalid("InvalidLineItemAmount", f"{where}.amount.value must be greater than 0")
    offer = line["selectedDeliveryOffer"]
    if (offer.get("details") is None) == (offer.get("summary") is None):
        raise invalid("InvalidDeliveryOffer", f"{where}.selectedDeliveryOffer needs exactly one of details, summary")
    check_new_aliases((), line.get("aliases"), where)
    if provider(line) != "AMAZON":
        return
    product = line.get("product") or {}
    try:
        identifier = product_identifier(product)
    except SandboxFault as fault:
        raise invalid(fault.code, f"{where}: {fault.message}") from None
    missing = [name for name, value in (("identifier", identifier), ("title", product.get("title")),
                                        ("price", product.get("price"))) if not value]
    if missing:
        raise invalid("MissingProductDetails",
                      f"{where}: Amazon-fulfilled line items need product {', '.join(missing)}")
    assert identifier is not None
    if not known_product(*identifier):
        raise invalid("InvalidSku", f"{where}: product {identifier[0]} {identifier[1]!r} is not in the catalog")
    if is_prime(line):
        details = offer["details"]
        absent = [name for name in ("deliveryPreviewId", "id") if not details.get(name)]
        if absent:
            raise invalid("MissingDeliveryPreview",
                          f"{where}: Prime line items need selectedDeliveryOffer.details {' and '.join(absent)} "
                          "from a delivery preview")
