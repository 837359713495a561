"""Configuration: one TOML file plus ``PRIMEBRIDGE__SECTION__KEY`` environment overrides.

Secrets are never written in the file itself: a secret field holds ``env:NAME`` or ``file:PATH``
and is resolved when used, so the parsed config can be printed or logged without leaking them.
Every key is documented in docs/configuration.md; a bad value is reported with its dotted key.
"""

from __future__ import annotations

import csv
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from primebridge.domain.errors import ConfigError
from primebridge.domain.routing import MissingPrimeData, OtherLines, RoutingPolicy

ENV_PREFIX = "PRIMEBRIDGE__"


class Secret:
    """A reference to a secret (``env:NAME`` / ``file:PATH``, or a literal for sandboxes).

    Not a ``str`` on purpose: ``str()``, f-strings, ``repr`` and JSON serialisation all show the
    reference or ``***``, never a literal value, so a logged or dumped config cannot leak it.
    """

    __slots__ = ("_ref",)

    def __init__(self, ref: str) -> None:
        self._ref = ref

    @property
    def is_reference(self) -> bool:
        return self._ref.startswith(("env:", "file:"))

    def reveal(self) -> str:
        ref = self._ref
        if ref.startswith("env:"):
            name = ref[4:]
            if name not in os.environ:
                raise ConfigError(f"secret environment variable {name} is not set")
            return os.environ[name]
        if ref.startswith("file:"):
            path = Path(ref[5:])
            try:
                return path.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"secret file {path} cannot be read: {exc.strerror}") from exc
        return ref

    def reference(self) -> str:
        """What a config file would hold: the reference itself, or ``***`` for a literal."""
        return self._ref if self.is_reference else "***"

    def __str__(self) -> str:
        return self.reference()

    def __repr__(self) -> str:
        return f"Secret({self.reference()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._ref == self._ref

    def __hash__(self) -> int:
        return hash(self._ref)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(
            cls, core_schema.str_schema(min_length=1),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda s: s.reference()))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(_Section):
    url: str = "sqlite:///var/primebridge.db"


class RuntimeConfig(_Section):
    worker_concurrency: int = Field(4, ge=1, le=64)
    lease_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(10, ge=1)
    backoff_base_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(300.0, gt=0)
    poll_interval_seconds: float = Field(0.5, gt=0, le=10)


class WebConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    intake_token: Secret | None = None
    admin_token: Secret | None = None
    public_url: str | None = None
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    forwarded_allow_ips: list[str] = ["127.0.0.1"]

    @model_validator(mode="after")
    def _tls_pair(self) -> WebConfig:
        # Checked here, not when uvicorn starts: a half-configured TLS must fail `config check` and
        # every command, naming the key, rather than start a plain-HTTP server by surprise.
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("web.tls_certfile and web.tls_keyfile must be set together")
        for key, path in (("tls_certfile", self.tls_certfile), ("tls_keyfile", self.tls_keyfile)):
            if path is not None and not path.is_file():
                raise ValueError(f"web.{key}: no such file {path}")
        return self


class AmazonConfig(_Section):
    graphql_url: str = "https://api.buywithprime.amazon.com/graphql"
    token_url: str = "https://api.buywithprime.amazon.com/token"
    client_id: str = ""
    client_secret: Secret = Field(default_factory=lambda: Secret("env:PRIMEBRIDGE_AMAZON_CLIENT_SECRET"))
    target_id: str = ""
    target_id_header: str = "x-api-target-id"
    api_access_key: Secret | None = None
    api_version: str = "2024-11-01"
    timeout_seconds: float = Field(30.0, gt=0)
    token_renew_before_seconds: float = Field(120.0, ge=0)
    token_client_auth: Literal["basic", "body"] = "basic"
    product_identifier: Literal["sku", "externalId", "amazonSku", "productId"] = "sku"


class RoutingConfig(_Section):
    amazon_locations: list[str] = []
    use_line_flag: bool = False
    order_types: list[str] = []
    statuses: list[str] = []
    require_control_flag: bool = False
    other_lines: OtherLines = OtherLines.MERCHANT
    prime_shipping_methods: list[str] = []
    delivery_speeds: dict[str, str] = {}
    default_delivery_speed: str = "STANDARD"
    missing_prime_data: MissingPrimeData = MissingPrimeData.REJECT
    sku_map: dict[str, str] = {}
    sku_map_file: Path | None = None
    sku_identity_fallback: bool = True
    alias_type: str = "OMS_ORDER_ID"
    line_alias_type: str = "OMS_LINE_ID"
    order_link_template: str | None = None

    def policy(self) -> RoutingPolicy:
        sku_map = dict(self.sku_map)
        if self.sku_map_file is not None:
            sku_map.update(load_sku_map(self.sku_map_file))
        return RoutingPolicy(
            amazon_locations=frozenset(self.amazon_locations),
            use_line_flag=self.use_line_flag,
            order_types=frozenset(self.order_types),
            statuses=frozenset(self.statuses),
            require_control_flag=self.require_control_flag,
            other_lines=self.other_lines,
            prime_shipping_methods=frozenset(self.prime_shipping_methods),
            delivery_speeds=dict(self.delivery_speeds),
            default_delivery_speed=self.default_delivery_speed,
            missing_prime_data=self.missing_prime_data,
            sku_map=sku_map,
            sku_identity_fallback=self.sku_identity_fallback,
            alias_type=self.alias_type,
            line_alias_type=self.line_alias_type,
            order_link_template=self.order_link_template,
        )


class SapRoutingConfig(RoutingConfig):
    order_types: list[str] = ["OR"]
    alias_type: str = "SAP_SALES_ORDER"
    line_alias_type: str = "SAP_SALES_ORDER_ITEM"


class NetSuiteRoutingConfig(RoutingConfig):
    """Own alias types per OMS: SAP order 4711 and NetSuite order 4711 must not meet in one store."""

    use_line_flag: bool = True
    statuses: list[str] = ["A", "B"]
    alias_type: str = "NETSUITE_SALES_ORDER"
    line_alias_type: str = "NETSUITE_SALES_ORDER_LINE"


def load_sku_map(path: Path) -> dict[str, str]:
    """CSV with the columns ``oms_item,amazon_sku`` (a byte-order mark, as Excel writes, is fine).
    A relative path is read from the working directory of the primebridge process."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not {"oms_item", "amazon_sku"} <= set(reader.fieldnames or ()):
                raise ConfigError(f"routing.sku_map_file {path}: needs the columns oms_item,amazon_sku, "
                                  f"found {', '.join(reader.fieldnames or ()) or 'none'}")
            rows = list(reader)
    except OSError as exc:
        raise ConfigError(f"routing.sku_map_file {path}: {exc.strerror}") from exc
    return {row["oms_item"].strip(): (row["amazon_sku"] or "").strip() for row in rows if row.get("oms_item")}


class SapFieldsConfig(_Section):
    """Where the Amazon data lives in SAP. Text ids are the merchant's own (Z...) text types."""

    amazon_order_text_id: str = "Z001"
    amazon_line_text_id: str = "Z002"
    control_text_id: str = "Z003"
    delivery_preview_text_id: str = "Z004"
    delivery_offer_text_id: str = "Z005"
    shopper_token_text_id: str = "Z006"
    text_language: str = "EN"
    ship_to_partner_function: str = "WE"
    sold_to_partner_function: str = "AG"


class SapShipmentsConfig(_Section):
    """Outbound deliveries, goods issue, tracking texts and item rejection (Amazon events → SAP).

    Text ids and rejection reasons are the merchant's customizing values ([U] in the reference);
    the defaults are placeholders in the customer (Z) namespace.
    """

    delivery_service: str = "/sap/opu/odata/sap/API_OUTBOUND_DELIVERY_SRV;v=0002"
    shipping_point: str | None = Field(None, min_length=1, max_length=4)
    package_text_id: str = Field("Z101", min_length=1, max_length=4)
    tracking_text_id: str = Field("Z102", min_length=1, max_length=4)
    milestone_text_id: str = Field("Z103", min_length=1, max_length=4)
    delivered_text_id: str = Field("Z104", min_length=1, max_length=4)
    failure_text_id: str = Field("Z105", min_length=1, max_length=4)
    # "" switches it off (TOML has no null): the tracking number is then only in the tracking text.
    tracking_number_field: Literal["BillOfLading", "DeliveryDocumentBySupplier", "MeansOfTransport", ""] = (
        "BillOfLading")
    post_goods_issue: bool = True
    delivery_date_target: Literal["delivery", "sales_order", "both", "none"] = "delivery"
    rejection_reasons: dict[str, str] = {"CUSTOMER_REQUESTED": "Z1", "UNFULFILLABLE": "Z2",
                                         "UNDELIVERABLE": "Z3"}

    @field_validator("rejection_reasons")
    @classmethod
    def _reasons(cls, value: dict[str, str]) -> dict[str, str]:
        known = {"CUSTOMER_REQUESTED", "UNFULFILLABLE", "UNDELIVERABLE"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown Amazon cancellation reason(s) {', '.join(unknown)}; "
                             f"expected {', '.join(sorted(known))}")
        missing = sorted(known - set(value))
        if missing:
            raise ValueError(f"no SAP rejection reason for {', '.join(missing)}")
        bad = sorted(k for k, v in value.items() if not 1 <= len(v) <= 2)
        if bad:
            raise ValueError(f"SAP rejection reasons are 1-2 characters (SalesDocumentRjcnReason); "
                             f"check {', '.join(bad)}")
        return value


class SapInventoryConfig(_Section):
    """Stock at the Amazon plant / storage location and the goods movements that adjust it.

    Movement types, goods movement codes and the stock type codes are the merchant's customizing
    ([U] in the reference §5): the defaults are SAP's standard "receipt without purchase order" pair.
    """

    stock_service: str = "/sap/opu/odata/sap/API_MATERIAL_STOCK_SRV"
    document_service: str = "/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV"
    plant: str = Field("", max_length=4)
    storage_location: str = Field("", max_length=4)
    stock_type: str = Field("01", max_length=2)
    special_stock_type: str = Field("", max_length=1)
    missing_as_zero: bool = False
    increase_movement_type: str = Field("501", min_length=3, max_length=3)
    decrease_movement_type: str = Field("502", min_length=3, max_length=3)
    increase_movement_code: str = Field("05", min_length=2, max_length=2)
    decrease_movement_code: str = Field("05", min_length=2, max_length=2)
    reason_code: str | None = Field(None, min_length=1, max_length=4)
    cost_center: str | None = Field(None, min_length=1, max_length=10)
    entry_unit: str | None = Field(None, min_length=1, max_length=3)
    header_text: str = Field("Amazon inventory sync", min_length=1, max_length=25)
    items_per_document: int = Field(200, ge=1, le=999)
    values_per_query: int = Field(50, ge=1, le=200)


class SapConfig(_Section):
    enabled: bool = False
    base_url: str = "http://127.0.0.1:8102"
    sales_order_service: str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV"
    sap_client: str | None = None
    auth: Literal["basic", "oauth"] = "basic"
    username: str = ""
    password: Secret | None = None
    token_url: str | None = None
    client_id: str = ""
    client_secret: Secret | None = None
    page_size: int = Field(100, ge=1, le=5000)
    timeout_seconds: float = Field(30.0, gt=0)
    sync_interval_seconds: float = Field(300.0, gt=0)
    initial_watermark: str = "1970-01-01T00:00:00Z"
    fields: SapFieldsConfig = SapFieldsConfig()
    routing: SapRoutingConfig = SapRoutingConfig()
    shipments: SapShipmentsConfig = SapShipmentsConfig()
    inventory: SapInventoryConfig = SapInventoryConfig()


class NetSuiteFieldsConfig(_Section):
    amazon_order_field: str = "custbody_pb_amazon_order_id"
    amazon_line_field: str = "custcol_pb_amazon_line_id"
    amazon_flag_field: str = "custcol_pb_amazon_fulfilled"
    hold_field: str | None = "custbody_pb_hold"
    delivery_preview_field: str = "custcol_pb_delivery_preview_id"
    delivery_offer_field: str = "custcol_pb_delivery_offer_id"
    shopper_token_field: str = "custbody_pb_shopper_token"
    pending_approval_status: str = "A"


class NetSuiteShipmentsConfig(_Section):
    """Item fulfillments, tracking fields and line closing (Amazon events → NetSuite).

    Every ``*_field`` is the script id of a custom field the merchant creates; TOML has no null, so
    an optional one is switched off with ``""``. Times are written as ISO 8601 UTC text because the
    REST JSON shape of Date/Time custom fields is unconfirmed (reference §2.3, [U]).
    """

    package_id_field: str = Field("custbody_pb_amazon_package_id", pattern=r"^custbody\w+$")
    use_external_id: bool = True
    external_id_prefix: str = Field("PB-PKG-", pattern=r"^[A-Za-z0-9_-]*$")
    ship_status: Literal["A", "B", "C"] = "C"
    package_weight_lb: float | None = Field(None, gt=0)
    carrier_field: str | None = "custbody_pb_carrier"
    tracking_url_field: str | None = "custbody_pb_tracking_url"
    estimated_delivery_field: str | None = "custbody_pb_estimated_delivery"
    milestone_code_field: str | None = "custbody_pb_milestone_code"
    milestone_time_field: str | None = "custbody_pb_milestone_time"
    milestone_location_field: str | None = "custbody_pb_milestone_location"
    delivered_time_field: str | None = "custbody_pb_delivered_at"
    delivery_failure_field: str | None = "custbody_pb_delivery_failure"
    delivery_failure_time_field: str | None = "custbody_pb_delivery_failed_at"
    cancelled_quantity_field: str | None = "custcol_pb_amazon_cancelled_qty"
    cancel_reason_field: str | None = "custcol_pb_amazon_cancel_reason"

    @field_validator("carrier_field", "tracking_url_field", "estimated_delivery_field", "milestone_code_field",
                     "milestone_time_field", "milestone_location_field", "delivered_time_field",
                     "delivery_failure_field", "delivery_failure_time_field", "cancelled_quantity_field",
                     "cancel_reason_field")
    @classmethod
    def _custom_field(cls, value: str | None, info: Any) -> str | None:
        """``""`` switches the value off; otherwise a body (``custbody``) or, for the two sales-order
        line keys, a column (``custcol``) script id, which is also what makes it safe in SuiteQL."""
        if value is None or not value.strip():
            return None
        prefix = "custcol" if info.field_name in ("cancelled_quantity_field", "cancel_reason_field") else "custbody"
        if not re.fullmatch(prefix + r"\w+", value.strip()):
            raise ValueError(f"must be a {prefix}… script id (letters, digits, _), or \"\" to switch it off")
        return value.strip()


class NetSuiteInventoryConfig(_Section):
    """Stock at the Amazon location and the inventory adjustments that change it."""

    location_id: str = Field("", pattern=r"^\d*$")
    account_id: str = Field("", pattern=r"^\d*$")
    subsidiary_id: str | None = Field(None, pattern=r"^\d+$")
    department_id: str | None = Field(None, pattern=r"^\d+$")
    class_id: str | None = Field(None, pattern=r"^\d+$")
    item_key: Literal["itemid", "id"] = "itemid"
    memo: str = Field("Amazon inventory sync", min_length=1, max_length=999)
    external_id_prefix: str = Field("PB-INV-", pattern=r"^[A-Za-z0-9_-]*$", max_length=20)
    lines_per_document: int = Field(200, ge=1, le=1000)
    items_per_query: int = Field(500, ge=1, le=1000)


class NetSuiteConfig(_Section):
    enabled: bool = False
    account_id: str = ""
    base_url: str | None = None
    auth: Literal["tba", "oauth2"] = "tba"
    consumer_key: str = ""
    consumer_secret: Secret | None = None
    token_id: str = ""
    token_secret: Secret | None = None
    client_id: str = ""
    certificate_id: str = ""
    private_key: Secret | None = None
    token_url: str | None = None
    concurrency: int = Field(4, ge=1, le=64)
    page_size: int = Field(1000, ge=1, le=1000)
    timeout_seconds: float = Field(30.0, gt=0)
    sync_interval_seconds: float = Field(300.0, gt=0)
    initial_watermark: str = "1970-01-01T00:00:00Z"
    integration_user_id: str | None = None
    fields: NetSuiteFieldsConfig = NetSuiteFieldsConfig()
    routing: NetSuiteRoutingConfig = NetSuiteRoutingConfig()
    shipments: NetSuiteShipmentsConfig = NetSuiteShipmentsConfig()
    inventory: NetSuiteInventoryConfig = NetSuiteInventoryConfig()

    @field_validator("account_id")
    @classmethod
    def _account(cls, value: str) -> str:
        return value.strip()

    def resolved_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        if not self.account_id:
            raise ConfigError("netsuite.account_id or netsuite.base_url must be set")
        host = self.account_id.lower().replace("_", "-")
        return f"https://{host}.suitetalk.api.netsuite.com"


class EventsConfig(_Section):
    """Buy with Prime event intake: caller authentication, signature check, subscriptions.

    BwP authenticates its deliveries with what the merchant put in the auth profile: HTTP Basic
    (``basic_*``) or an OAuth client-credentials token that primebridge itself issues at
    ``POST /oauth/token`` (``oauth_*``). Both may be set; with neither, every delivery gets 401.
    Which header BwP sends and the ``x-amzn-signature`` scheme are unconfirmed (reference §3.4).
    """

    basic_username: str = ""
    basic_password: Secret | None = None
    oauth_client_id: str = ""
    oauth_client_secret: Secret | None = None
    token_signing_secret: Secret | None = None
    token_ttl_seconds: int = Field(900, ge=60, le=86400)
    secret_reload_seconds: float = Field(30.0, ge=0)
    verify_signature: bool = False
    jwks_url: str = "https://api.buywithprime.amazon.com/jwks.json"
    jwks_cache_seconds: float = Field(3600.0, gt=0)
    jwks_refetch_seconds: float = Field(10.0, ge=0)
    signature_header: str = "x-amzn-signature"
    key_id_header: str = "x-amzn-kid"
    max_body_bytes: int = Field(256_000, ge=1024, le=10_000_000)
    destination_url: str | None = None
    subscribe_auth: Literal["oauth", "basic"] = "oauth"
    auth_profile_alias: str = "primebridge"
    event_types: list[str] = []


SPAPI_ENDPOINTS = {"na": "https://sellingpartnerapi-na.amazon.com", "eu": "https://sellingpartnerapi-eu.amazon.com",
                   "fe": "https://sellingpartnerapi-fe.amazon.com"}
SPAPI_SANDBOX_ENDPOINTS = {"na": "https://sandbox.sellingpartnerapi-na.amazon.com",
                           "eu": "https://sandbox.sellingpartnerapi-eu.amazon.com",
                           "fe": "https://sandbox.sellingpartnerapi-fe.amazon.com"}


class SpApiConfig(_Section):
    """Selling Partner API (inventory): Login with Amazon, endpoints, rate limits."""

    region: Literal["na", "eu", "fe"] = "na"
    use_sandbox: bool = False
    endpoints: dict[str, str] = SPAPI_ENDPOINTS
    sandbox_endpoints: dict[str, str] = SPAPI_SANDBOX_ENDPOINTS
    endpoint: str | None = None
    lwa_url: str = "https://api.amazon.com/auth/o2/token"
    client_id: str = ""
    client_secret: Secret = Field(default_factory=lambda: Secret("env:PRIMEBRIDGE_SPAPI_CLIENT_SECRET"))
    refresh_token: Secret = Field(default_factory=lambda: Secret("env:PRIMEBRIDGE_SPAPI_REFRESH_TOKEN"))
    seller_id: str = ""
    marketplace_id: str = "ATVPDKIKX0DER"
    rate_per_second: float = Field(2.0, gt=0)
    burst: int = Field(2, ge=1)
    adjust_rate_from_header: bool = True
    pacing_margin_ms: float = Field(20.0, ge=0, le=1000)
    sku_batch_size: int = Field(50, ge=1, le=50)
    max_retries: int = Field(5, ge=0, le=20)
    backoff_base_seconds: float = Field(0.5, gt=0)
    backoff_max_seconds: float = Field(8.0, gt=0, le=25)
    max_scan_restarts: int = Field(3, ge=0, le=20)
    timeout_seconds: float = Field(30.0, gt=0)
    token_renew_before_seconds: float = Field(300.0, ge=0)

    def resolved_endpoint(self) -> str:
        """``endpoint`` when set, else the region's production or Amazon-sandbox host."""
        if self.endpoint:
            return self.endpoint.rstrip("/")
        table = self.sandbox_endpoints if self.use_sandbox else self.endpoints
        if self.region not in table:
            key = "spapi.sandbox_endpoints" if self.use_sandbox else "spapi.endpoints"
            raise ConfigError(f"{key} has no entry for region {self.region!r}")
        return table[self.region].rstrip("/")


class InventoryConfig(_Section):
    """Inventory sync: SKU mapping, schedule of the full reconciliation, parallelism, reports."""

    enabled: bool = False
    oms: list[str] = []
    realtime: bool = True
    sku_map: dict[str, dict[str, str]] = {}
    mapping_file: Path | None = None
    use_products: bool = True
    product_field: Literal["sku", "externalId"] = "sku"
    products_refresh_seconds: float = Field(300.0, ge=0)
    full_sync_interval_seconds: float = Field(86400.0, ge=0)
    parallel: int = Field(4, ge=1, le=64)
    report_dir: Path = Path("var/inventory")
    retry_attempts: int = Field(5, ge=1, le=20)
    lease_seconds: float = Field(120.0, gt=0)

    def mapping_table(self) -> dict[str, dict[str, str]]:
        """``sku_map`` plus the rows of ``mapping_file``: ``{OMS or "*": {seller SKU: OMS item}}``."""
        table = {oms: dict(entries) for oms, entries in self.sku_map.items()}
        if self.mapping_file is not None:
            for oms, entries in load_inventory_map(self.mapping_file).items():
                table.setdefault(oms, {}).update(entries)
        return table


def load_inventory_map(path: Path) -> dict[str, dict[str, str]]:
    """CSV with the columns ``seller_sku,oms_item`` and optionally ``oms`` (``sap``, ``netsuite``, any case;
    empty means every OMS). A byte-order mark is fine; a relative path is read from the working directory."""
    table: dict[str, dict[str, str]] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not {"seller_sku", "oms_item"} <= set(reader.fieldnames or ()):
                raise ConfigError(f"inventory.mapping_file {path}: needs the columns seller_sku,oms_item[,oms], "
                                  f"found {', '.join(reader.fieldnames or ()) or 'none'}")
            for line, row in enumerate(reader, start=2):
                sku = (row.get("seller_sku") or "").strip()
                if not sku:
                    raise ConfigError(f"inventory.mapping_file {path} line {line}: seller_sku is empty")
                oms = (row.get("oms") or "").strip().lower() or "*"
                table.setdefault(oms, {})[sku] = (row.get("oms_item") or "").strip()
    except OSError as exc:
        raise ConfigError(f"inventory.mapping_file {path}: {exc.strerror}") from exc
    return table


class NotifyConfig(_Section):
    kind: Literal["log", "webhook", "smtp"] = "log"
    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str | None = None
    smtp_to: list[str] = []
    smtp_username: str = ""
    smtp_password: Secret | None = None
    smtp_starttls: bool = False
    timeout_seconds: float = Field(10.0, gt=0)


class PackageEventsConfig(_Section):
    """Amazon package events → OMS documents (shipments, tracking, delivery, failures, cancellations).

    The OMS document id is written back to the Amazon package as an alias of the OMS's type here
    (a third OMS without an entry gets ``<NAME>_SHIPMENT``). Whether BwP accepts any alias type on a
    package is unconfirmed (reference §2.4), hence configurable, and the write can be switched off.
    """

    write_document_alias: bool = True
    document_alias_types: dict[str, str] = {"sap": "SAP_OUTBOUND_DELIVERY", "netsuite": "NETSUITE_ITEM_FULFILLMENT"}
    notify_delivery_failures: bool = True

    def alias_type(self, oms: str) -> str:
        return self.document_alias_types.get(oms, f"{oms.upper()}_SHIPMENT")


class Settings(_Section):
    store: StoreConfig = StoreConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    web: WebConfig = WebConfig()
    amazon: AmazonConfig = AmazonConfig()
    sap: SapConfig = SapConfig()
    netsuite: NetSuiteConfig = NetSuiteConfig()
    notify: NotifyConfig = NotifyConfig()
    events: EventsConfig = EventsConfig()
    spapi: SpApiConfig = SpApiConfig()
    inventory: InventoryConfig = InventoryConfig()
    package_events: PackageEventsConfig = PackageEventsConfig()
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"


def _apply_env(data: dict[str, Any], environ: dict[str, str]) -> None:
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in key[len(ENV_PREFIX):].split("__") if part]
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment override {key}: {'.'.join(path[:-1])} is not a section")
        node[path[-1]] = _parse_env_value(value)


def _parse_env_value(value: str) -> Any:
    """Lists and tables are written as TOML literals (``["AMZ1", "AMZ2"]``); everything else stays
    text and pydantic converts it for the key's type, so ``100`` stays a string where one is wanted."""
    if value.lstrip().startswith(("[", "{")):
        try:
            return tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"environment value {value!r} is not a valid TOML list or table: {exc}") from exc
    return value


def _error_text(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top)"
        lines.append(f"{key}: {err['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    _apply_env(data, dict(os.environ if environ is None else environ))
    return settings_from_dict(data)


def settings_from_dict(data: dict[str, Any]) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_error_text(exc)) from exc
