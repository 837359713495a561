"""Property-based fuzzing of the Buy with Prime event intake (``POST /events/amazon``, ``POST /oauth/token``).

Over 5,000 generated requests in total, through the real ASGI app in-process (Starlette's
``TestClient``) on a SQLite store. The properties, for every request:

- never a 5xx;
- wrong or missing credentials → 401 and nothing stored;
- a 4xx stores nothing; a 200 stored exactly the event the body describes;
- every stored event re-parses from its stored body to the same fields (no malformed event stored).
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from starlette.testclient import TestClient

from primebridge.domain.errors import Rejected
from primebridge.domain.events import parse_event
from primebridge.entrypoints.bootstrap import Service, build
from primebridge.entrypoints.web import create_app
from primebridge.runtime.tables import AmazonEventRow, Job, Message
from primebridge.sandbox.profile import sandbox_settings

AUTH = {"Authorization": "Basic " + base64.b64encode(b"bwp-sandbox:sandbox-events-password").decode()}
BP = "businessProduct/bp-00000000-0000-4000-8000-0000000f0220"
REQUESTS: dict[str, int] = {}
PLANNED = {"json": 1500, "mutated": 1500, "eventbridge": 800, "bytes": 500, "auth": 500, "token": 300}
FUZZ = settings(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Service]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    closed = "http://127.0.0.1:9"   # never contacted: intake talks to no remote system
    service = build(sandbox_settings(amazon_url=closed, sap_url=closed, netsuite_url=closed,
                                     store_url=f"sqlite:///{tmp / 'fuzz.db'}", overrides={"log_level": "ERROR"}))
    service.event_handlers["PACKAGE_DELIVERED"] = lambda event: "fuzz"
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield client, service
    service.close()
    total = sum(REQUESTS.values())
    if set(REQUESTS) == set(PLANNED):
        assert total >= 5000, REQUESTS


def counts(service: Service) -> tuple[int, int, int]:
    with service.db.transaction() as session:
        return tuple(int(session.scalar(select(func.count()).select_from(t)) or 0)   # type: ignore[return-value]
                     for t in (Message, AmazonEventRow, Job))


def post(client: TestClient, service: Service, name: str, content: bytes,
         headers: dict[str, str] | None = None, authorised: bool = True) -> int:
    """One request, checked against the properties above; returns the status."""
    REQUESTS[name] = REQUESTS.get(name, 0) + 1
    before = counts(service)
    response = client.post("/events/amazon", content=content, headers=AUTH if headers is None else headers)
    status = response.status_code
    assert status < 500, (status, response.text, content[:300])
    after = counts(service)
    if not authorised:
        assert status == 401, (status, response.text)
    if status != 200:
        assert 400 <= status < 500
        assert after == before, "a refused request stored something"
        assert response.json()["error"], "a 4xx must say what is wrong"
        return status
    answer = response.json()
    event = parse_event(content)   # the body the endpoint accepted must be a valid event
    if answer["status"] == "accepted":
        assert after[:2] == (before[0] + 1, before[1] + 1)
    else:
        assert answer["status"] == "duplicate" and after == before
    assert answer["event_id"] == event.event_id
    return status


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=40)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)


resource_keys = st.sampled_from(["order", "delivery", "carrier", "tracker", "refund", "return", "inventory-item",
                                 "", "1x", "order/", "a b"])
segment_values = st.text(alphabet=string.printable + "é#\u0000\ud800", max_size=20) | st.just("x" * 200)


@st.composite
def resource_paths(draw: st.DrawFn) -> str:
    head = draw(st.sampled_from([BP, "businessProduct", "businessProduct/", "bp/x", "", BP + "/"]))
    parts = draw(st.lists(st.tuples(resource_keys, segment_values), max_size=4))
    path = head + "".join(f"/{k}/{v}" for k, v in parts)
    if draw(st.booleans()):
        path += "/" + draw(resource_keys)   # a dangling key
    return path


def valid_event(event_id: str) -> dict[str, Any]:
    return {"idempotencyKey": base64.b64encode(f"s#{event_id}".encode()).decode(),
            "eventDescriptor": "PACKAGE_DELIVERED", "resources": [f"{BP}/order/O-1/delivery/{event_id[:30]}"],
            "eventId": event_id, "apiVersion": "2024-11-01", "subscriptionId": "s",
            "eventTime": "2025-01-20T12:34:56Z", "data": {}}


FIELDS = ["idempotencyKey", "eventDescriptor", "resources", "eventId", "apiVersion", "subscriptionId",
          "eventTime", "data"]
field_values = (json_values() | st.lists(resource_paths(), max_size=3) | st.sampled_from(
    ["PACKAGE_DELIVERED", "SOME_NEW_TYPE", "2025-01-20T12:34:56Z", "2025-13-01", "", " ", "\u0000", "x" * 300]))


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    body = valid_event(draw(st.uuids()).hex)
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        action = draw(st.sampled_from(["drop", "replace", "replace"]))
        if action == "drop":
            body.pop(name)
        else:
            body[name] = draw(field_values)
    return body


def test_random_json_bodies(app: tuple[TestClient, Service]) -> None:
    client, service = app

    @given(body=json_values() | st.dictionaries(st.sampled_from([*FIELDS, "detail", "detail-type", "id"]),
                                                field_values, max_size=8))
    def check(body: Any) -> None:
        post(client, service, "json", json.dumps(body).encode())

    settings(FUZZ, max_examples=PLANNED["json"])(check)()


def test_mutated_webhook_events(app: tuple[TestClient, Service]) -> None:
    client, service = app

    @given(body=mutated_events(), repeat=st.booleans())
    def check(body: dict[str, Any], repeat: bool) -> None:
        content = json.dumps(body).encode()
        if post(client, service, "mutated", content) == 200 and repeat:
            post(client, service, "mutated", content)   # a redelivery is a duplicate, never a second event

    settings(FUZZ, max_examples=PLANNED["mutated"])(check)()


def test_eventbridge_envelopes(app: tuple[TestClient, Service]) -> None:
    client, service = app

    @given(detail=mutated_events() | json_values(), outer=st.dictionaries(
        st.sampled_from(["version", "id", "detail-type", "source", "time", "resources"]), field_values, max_size=6))
    def check(detail: Any, outer: dict[str, Any]) -> None:
        post(client, service, "eventbridge", json.dumps({**outer, "detail": detail}).encode())

    settings(FUZZ, max_examples=PLANNED["eventbridge"])(check)()


def test_random_bytes(app: tuple[TestClient, Service]) -> None:
    client, service = app

    @given(content=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
    def check(content: bytes) -> None:
        post(client, service, "bytes", content)

    settings(FUZZ, max_examples=PLANNED["bytes"])(check)()


def test_wrong_credentials_always_401(app: tuple[TestClient, Service]) -> None:
    client, service = app
    good = AUTH["Authorization"]
    schemes = st.sampled_from(["Basic ", "basic ", "Bearer ", "bearer ", "Digest ", ""])
    credentials = st.text(alphabet=string.printable, max_size=60) | st.tuples(
        st.text(max_size=15), st.text(max_size=25)).map(lambda p: base64.b64encode(f"{p[0]}:{p[1]}".encode()).decode())

    @given(header=st.tuples(schemes, credentials).map("".join).filter(lambda h: h.strip() != good),
           present=st.booleans(), event_id=st.uuids())
    def check(header: str, present: bool, event_id: Any) -> None:
        headers = {"Authorization": header} if present else {}
        try:
            header.encode("latin-1")
        except UnicodeEncodeError:
            headers = {}
        post(client, service, "auth", json.dumps(valid_event(event_id.hex)).encode(), headers=headers,
             authorised=False)

    settings(FUZZ, max_examples=PLANNED["auth"])(check)()


def test_token_endpoint(app: tuple[TestClient, Service]) -> None:
    client, _ = app
    form_keys = st.sampled_from(["grant_type", "client_id", "client_secret", "scope", "x"])
    form_values = st.sampled_from(["client_credentials", "bwp-sandbox", "sandbox-events-secret", ""]) | st.text(
        max_size=20)

    @given(form=st.dictionaries(form_keys, form_values, max_size=5) | st.binary(max_size=100))
    def check(form: dict[str, str] | bytes) -> None:
        REQUESTS["token"] = REQUESTS.get("token", 0) + 1
        if isinstance(form, bytes):
            response = client.post("/oauth/token", content=form)
        else:
            response = client.post("/oauth/token", data=form)
        assert response.status_code in (200, 400, 401, 413), response.text
        if response.status_code == 200:
            assert isinstance(form, dict)
            assert (form.get("grant_type"), form.get("client_id"), form.get("client_secret")) == (
                "client_credentials", "bwp-sandbox", "sandbox-events-secret")

    settings(FUZZ, max_examples=PLANNED["token"])(check)()


def test_every_stored_event_reparses_to_its_row(app: tuple[TestClient, Service]) -> None:
    """Runs last in the module: nothing malformed was stored by any of the requests above."""
    _, service = app
    with service.db.transaction() as session:
        rows = session.execute(select(AmazonEventRow, Message.payload)
                               .join(Message, Message.id == AmazonEventRow.message_id)).all()
    for row, payload in rows:
        try:
            event = parse_event(payload)
        except Rejected as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"stored event {row.id} does not parse: {exc.reason}")
        assert (event.event_id, event.event_type, event.order_id, event.ordering_key) == (
            row.event_id, row.event_type, row.order_id, row.ordering_key)
