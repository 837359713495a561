"""The Buy with Prime connector (tokens, GraphQL client, BwpOrders) against the sandbox over real HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from tests.sandbox.amazon_fixtures import (
    CATALOG,
    TARGET_ID,
    amazon_line,
    graphql_client,
    http_client,
    merchant_line,
    orders,
    request,
    stats,
    tokens,
)

from primebridge.connectors.amazon import BwpGraphQLClient
from primebridge.connectors.amazon import errors as bwp_errors
from primebridge.connectors.amazon.client import load_document
from primebridge.connectors.http import AuditEntry
from primebridge.domain.errors import AlreadyExists, PermanentError, Rejected, TransientError
from primebridge.domain.model import Alias, ExecutionState
from primebridge.sandbox.amazon import create_app
from primebridge.sandbox.knobs import Knobs
from primebridge.sandbox.server import ThreadedServer, free_port


class Sandbox:
    def __init__(self, server: ThreadedServer, app: Starlette) -> None:
        self.server = server
        self.app = app
        self.url = server.url


Starter = Callable[..., Sandbox]


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    app = create_app(catalog=CATALOG)
    with ThreadedServer(app, name="bwp") as server:
        yield Sandbox(server, app)


@pytest.fixture
def bwp(shared: Sandbox) -> Sandbox:
    shared.app.state.sandbox.reset()
    shared.app.state.knobs.update({"throttle_rate": 0.0, "error_rate": 0.0, "latency_ms": 0.0})
    return shared


@pytest.fixture
def start() -> Iterator[Starter]:
    """Starts dedicated sandboxes (odd token lifetimes, clocks, knobs) and stops them afterwards."""
    servers: list[ThreadedServer] = []

    def run(**kwargs: object) -> Sandbox:
        app = create_app(catalog=CATALOG, **kwargs)  # type: ignore[arg-type]
        server = ThreadedServer(app, name="bwp-special").start()
        servers.append(server)
        return Sandbox(server, app)

    yield run
    for server in servers:
        server.stop()


# -- tokens ------------------------------------------------------------------------------------

def test_token_is_cached_and_reused(bwp: Sandbox) -> None:
    amazon = orders(bwp.url)
    created = amazon.create_order(request())
    assert amazon.get_order(created.order_id) == created
    assert amazon.get_order_by_alias(Alias("OMS_ORDER_ID", "4711")) == created
    assert stats(bwp.url)["token.minted"] == 1


def test_token_is_renewed_before_it_expires(bwp: Sandbox) -> None:
    now = [1000.0]
    source = tokens(bwp.url, renew_before=120, clock=lambda: now[0])
    first = source.token()
    now[0] += 900 - 121
    assert source.token() == first
    now[0] += 2
    second = source.token()
    assert second != first
    assert stats(bwp.url)["token.minted"] == 2


def test_token_is_renewed_after_expiry(start: Starter) -> None:
    bwp = start(token_ttl_seconds=2)
    amazon = orders(bwp.url, token_renew_before_seconds=0)
    amazon.get_order_by_alias(Alias("OMS_ORDER_ID", "none"))
    time.sleep(2.2)
    assert amazon.get_order_by_alias(Alias("OMS_ORDER_ID", "none")) is None
    counts = stats(bwp.url)
    assert counts["token.minted"] == 2
    assert counts.get("graphql.unauthorized", 0) == 0


def test_one_renewal_at_a_time_across_threads(start: Starter) -> None:
    bwp = start(knobs=Knobs(latency_ms=150))
    amazon = orders(bwp.url)
    barrier = threading.Barrier(8)
    results: list[object] = []

    def work() -> None:
        barrier.wait()
        results.append(amazon.get_order_by_alias(Alias("OMS_ORDER_ID", "missing")))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert results == [None] * 8
    counts = stats(bwp.url)
    assert counts["token.minted"] == 1
    assert counts["order"] == 8


def test_wrong_secret_is_permanent_and_names_the_endpoint(bwp: Sandbox) -> None:
    with pytest.raises(PermanentError, match=r"token endpoint .*/token.* error=invalid_client") as exc:
        orders(bwp.url, client_secret="wrong").get_order("322-AAAA-AAAAAA")
    assert not isinstance(exc.value, TransientError)
    assert stats(bwp.url)["token.refused"] == 1


def test_client_credentials_in_the_body(bwp: Sandbox) -> None:
    assert tokens(bwp.url, client_auth="body").token()
    with pytest.raises(PermanentError, match="invalid_client"):
        tokens(bwp.url, client_auth="body", secret="nope").token()


def test_throttled_token_endpoint_is_transient(bwp: Sandbox) -> None:
    bwp.app.state.knobs.update({"throttle_rate": 1.0, "retry_after_seconds": 3})
    with pytest.raises(TransientError, match="HTTP 429") as exc:
        tokens(bwp.url).token()
    assert exc.value.retry_after == 3


def test_expired_token_401_is_retried_once(start: Starter) -> None:
    server_time = [0.0]
    bwp = start(clock=lambda: server_time[0])
    amazon = orders(bwp.url)
    created = amazon.create_order(request())
    server_time[0] += 901  # the sandbox now considers the cached token expired; the client does not
    assert amazon.get_order(created.order_id) == created
    counts = stats(bwp.url)
    assert counts["token.minted"] == 2
    assert counts["graphql.unauthorized"] == 1


def test_revoked_token_is_replaced(bwp: Sandbox) -> None:
    amazon = orders(bwp.url)
    created = amazon.create_order(request())
    httpx.post(f"{bwp.url}/_sandbox/tokens/revoke")
    assert amazon.update_order(created.order_id, execution_state=ExecutionState.STARTED).execution_state \
        is ExecutionState.STARTED
    assert stats(bwp.url)["graphql.unauthorized"] == 1


def test_second_401_is_permanent(start: Starter) -> None:
    bwp = start(token_ttl_seconds=0)
    with pytest.raises(PermanentError, match="HTTP 401 twice"):
        orders(bwp.url).get_order("322-AAAA-AAAAAA")
    counts = stats(bwp.url)
    assert counts["token.minted"] == 2
    assert counts["graphql.unauthorized"] == 2


# -- orders ------------------------------------------------------------------------------------

def test_create_then_read_by_id_and_alias(bwp: Sandbox) -> None:
    amazon = orders(bwp.url)
    created = amazon.create_order(request("4711", amazon_line(), merchant_line()))
    assert created.order_id.startswith("322-")
    assert created.execution_state is ExecutionState.NOT_STARTED
    assert created.aliases == (Alias("OMS_ORDER_ID", "4711"),)
    lamp = created.line_for_alias(Alias("OMS_LINE_ID", "4711/10"))
    assert lamp is not None and lamp.sku == "LAMP-1" and lamp.quantity == 1
    assert created.line_for_alias(Alias("OMS_LINE_ID", "4711/20")) is not None
    assert amazon.get_order(created.order_id) == created
    assert amazon.get_order_by_alias(Alias("OMS_ORDER_ID", "4711")) == created
    assert amazon.get_order("322-NONE-NONE00") is None
    assert amazon.get_order_by_alias(Alias("OMS_ORDER_ID", "4712")) is None


def test_duplicate_alias_is_already_exists_then_adopted(bwp: Sandbox) -> None:
    amazon = orders(bwp.url)
    created = amazon.create_order(request())
    with pytest.raises(AlreadyExists, match=r"createOrder.*ConflictError/AliasValueAlreadyExists") as exc:
        amazon.create_order(request())
    assert isinstance(exc.value, bwp_errors.ConflictError)
    assert exc.value.code == "AliasValueAlreadyExists"
    assert amazon.get_order_by_alias(Alias("OMS_ORDER_ID", "4711")) == created
    assert len(bwp.app.state.sandbox.list_orders()) == 1
    assert stats(bwp.url)["createOrder.conflict"] == 1


def test_release_hold_and_add_aliases(bwp: Sandbox) -> None:
    amazon = orders(bwp.url)
    created = amazon.create_order(request("4711", amazon_line(quantity="2"), merchant_line()))
    line_id = created.lines[0].line_id
    released = amazon.update_order(created.order_id, execution_state=ExecutionState.STARTED,
                                   aliases=(Alias("EXTERNAL_ID", "SO-4711"),),
                                   line_aliases={line_id: (Alias("EXTERNAL_ID", "000010"),)})
    assert released.execution_state is ExecutionState.STARTED
    assert released.aliases == (Alias("OMS_ORDER_ID", "4711"), Alias("EXTERNAL_ID", "SO-4711"))
    assert Alias("EXTERNAL_ID", "000010") in released.lines[0].aliases
    package = bwp.app.state.sandbox.admin_order(created.order_id)["packageInformation"]["details"]
    assert [(d["state"], [(a["lineItem"]["id"], a["amount"]["value"])
                          for a in d["packageInformationDetailsFor"]["orderLineItemAmounts"]])
            for d in package] == [("PENDING", [(line_id, 2)])]
    assert amazon.update_order(created.order_id) == released


def test_update_unknown_order_is_not_found(bwp: Sandbox) -> None:
    with pytest.raises(bwp_errors.NotFound, match=r"updateOrder.*ResourceNotFoundError"):
        orders(bwp.url).update_order("322-NONE-NONE00", execution_state=ExecutionState.STARTED)
    with pytest.raises(PermanentError, match="does not exist"):
        orders(bwp.url).update_order("322-NONE-NONE00")


def test_validation_error_is_rejected_with_code(bwp: Sandbox) -> None:
    with pytest.raises(Rejected, match=r"BwP createOrder failed: ValidationError/InvalidSku .*NOPE-1") as exc:
        orders(bwp.url).create_order(request("4711", amazon_line(sku="NOPE-1")))
    assert exc.value.code == "InvalidSku"
    assert isinstance(exc.value, bwp_errors.ValidationError)
    assert not isinstance(exc.value, AlreadyExists)


def test_fractional_quantity_is_rejected_by_the_schema(bwp: Sandbox) -> None:
    with pytest.raises(Rejected) as exc:
        orders(bwp.url).create_order(request("4711", amazon_line(quantity="1.5")))
    assert exc.value.code == "InvalidRequest"


def test_throttling_is_transient_with_retry_after(bwp: Sandbox) -> None:
    amazon = orders(bwp.url)
    amazon.get_order("322-AAAA-AAAAAA")  # token minted before the knob turns on
    bwp.app.state.knobs.update({"throttle_rate": 1.0, "retry_after_seconds": 2})
    with pytest.raises(TransientError, match="ThrottlingError") as exc:
        amazon.create_order(request())
    assert isinstance(exc.value, bwp_errors.ThrottlingError)
    assert exc.value.retry_after == 2
    bwp.app.state.knobs.update({"throttle_rate": 0.0, "error_rate": 1.0})
    with pytest.raises(TransientError, match="HTTP 503"):
        amazon.get_order("322-AAAA-AAAAAA")
    assert stats(bwp.url)["graphql.throttled"] == 1


def test_network_error_is_transient(bwp: Sandbox) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there; the token endpoint works
    client = BwpGraphQLClient(http_client(down), tokens(bwp.url), target_id=TARGET_ID)
    with pytest.raises(TransientError, match="order: ConnectError"):
        client.execute(load_document("order.graphql"), {"orderIdentifier": {"orderId": "x"}})


# -- headers -----------------------------------------------------------------------------------

def test_wrong_target_id_is_access_denied(bwp: Sandbox) -> None:
    client = graphql_client(bwp.url, target_id="someone-else")
    with pytest.raises(PermanentError, match="AccessDeniedError") as exc:
        client.execute(load_document("order.graphql"), {"orderIdentifier": {"orderId": "x"}})
    assert isinstance(exc.value, bwp_errors.AccessDeniedError)


def test_omni_target_header_and_access_key(start: Starter) -> None:
    bwp = start(api_access_key="early-access")
    query, variables = load_document("order.graphql"), {"orderIdentifier": {"orderId": "322-AAAA-AAAAAA"}}
    client = graphql_client(bwp.url, target_id_header="X-Omni-TargetId", api_access_key="early-access")
    with pytest.raises(bwp_errors.NotFound):
        client.execute(query, variables)
    with pytest.raises(bwp_errors.AccessDeniedError, match="InvalidAccessKey"):
        graphql_client(bwp.url).execute(query, variables)


def test_unsupported_api_version_is_permanent(bwp: Sandbox) -> None:
    client = graphql_client(bwp.url, api_version="2023-01-01")
    with pytest.raises(PermanentError, match=r"HTTP 400.*UnsupportedApiVersion"):
        client.execute(load_document("order.graphql"), {"orderIdentifier": {"orderId": "x"}})


class Recorder:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


def test_audit_names_operations_and_hides_secrets(bwp: Sandbox) -> None:
    from primebridge.config import AmazonConfig
    from primebridge.connectors.amazon import build_amazon_orders

    audit = Recorder()
    cfg = AmazonConfig(graphql_url=f"{bwp.url}/graphql", token_url=f"{bwp.url}/token", client_id="sandbox-client",
                       client_secret="sandbox-secret", target_id="sandbox-target", token_client_auth="body")
    amazon = build_amazon_orders(cfg, audit=audit)
    amazon.create_order(request(shopper_token=None))
    assert [e.operation for e in audit.entries] == ["POST /token", "graphql createOrder"]
    text = " ".join(e.request + e.response for e in audit.entries)
    assert "Atza|" in httpx.post(f"{bwp.url}/token", data={"grant_type": "client_credentials"},
                                 auth=("sandbox-client", "sandbox-secret")).text  # what a token looks like
    assert "sandbox-secret" not in text and "Atza|" not in text
