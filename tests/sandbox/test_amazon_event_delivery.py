"""Event subscriptions in the Buy with Prime sandbox and the delivery of events to webhooks:
auth profiles, envelopes, Basic and OAuth client-credentials auth, ES384 signatures, retries,
duplicates, reordering, draining. A small receiver app on loopback stands in for primebridge."""

from __future__ import annotations

import base64
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.sandbox.amazon_fixtures import CATALOG, TARGET_ID
from tests.sandbox.amazon_package_fixtures import BP, Bwp, packages, state

from primebridge.sandbox.amazon import create_app
from primebridge.sandbox.amazon.delivery import DeliveryKnobs
from primebridge.sandbox.server import ThreadedServer

PROFILE = "mutation($input: CreateAuthProfileInput!) { createAuthProfile(input: $input) { authProfileId } }"
UPDATE_PROFILE = "mutation($input: UpdateAuthProfileInput!) { updateAuthProfile(input: $input) { authProfileId } }"
SUBSCRIBE = ("mutation($input: CreateEventSubscriptionInput!) "
             "{ createEventSubscription(input: $input) { subscriptionId } }")
UNSUBSCRIBE = "mutation($id: String!) { deleteEventSubscription(subscriptionId: $id) { subscriptionId } }"
SUBSCRIPTION = """query($id: String!) { eventSubscription(subscriptionId: $id) {
  subscriptionId targetId
  eventSubscriptionDetails { eventType destination { __typename
    ... on WebhookData { url method authProfileId } ... on EventBridgeData { arn } } } } }"""
SUBSCRIPTIONS = "{ eventSubscriptions { totalCount edges { node { id eventSubscriptionDetails { eventType } } } } }"
DEFAULT_KNOBS = {"delay_ms": 0, "reorder_window_ms": 0, "duplicate_rate": 0, "failure_rate": 0, "max_attempts": 5,
                 "retry_base_ms": 10, "retry_max_ms": 50, "timeout_seconds": 5, "concurrency": 1, "sign": False,
                 "signature_format": "der", "envelope": "webhook", "oauth_client_auth": "basic"}


class Receiver:
    """Records webhook POSTs and token requests; answers with queued statuses (200 by default)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hooks: list[tuple[dict[str, str], bytes]] = []
        self.token_calls: list[tuple[dict[str, str], dict[str, str]]] = []
        self.statuses: deque[int] = deque()
        self.refused_tokens: set[str] = set()
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"]),
                                     Route("/token", self.token, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.hooks.append((dict(request.headers), body))
            status = self.statuses.popleft() if self.statuses else 200
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
            if bearer in self.refused_tokens:
                status = 401
        return Response(status_code=status)

    async def token(self, request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        with self.lock:
            self.token_calls.append((dict(request.headers), form))
            token = f"tok-{len(self.token_calls)}"
        return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": 3600})

    def bodies(self) -> list[dict[str, Any]]:
        import json

        with self.lock:
            return [json.loads(body) for _, body in self.hooks]

    def clear(self) -> None:
        with self.lock:
            self.hooks.clear()
            self.token_calls.clear()
            self.statuses.clear()
            self.refused_tokens.clear()


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Starlette, str, Receiver, str]]:
    app = create_app(catalog=CATALOG, delivery_knobs=DeliveryKnobs(seed=7))
    receiver = Receiver()
    with ThreadedServer(app, name="bwp-events") as srv, ThreadedServer(receiver.app, name="receiver") as rcv:
        yield app, srv.url, receiver, rcv.url
    app.state.sandbox.deliveries.close()


class Events(Bwp):
    def __init__(self, app: Starlette, url: str, receiver: Receiver, receiver_url: str) -> None:
        super().__init__(app, url)
        self.receiver = receiver
        self.hook_url = f"{receiver_url}/hook"
        self.token_url = f"{receiver_url}/token"

    def profile(self, config: dict[str, Any], alias: str | None = None) -> str:
        data: dict[str, Any] = {"authConfig": config}
        if alias:
            data["authProfileAliasId"] = alias
        return str(self.ok(PROFILE, {"input": data})["createAuthProfile"]["authProfileId"])

    def subscribe(self, event_type: str, **webhook: Any) -> str:
        destination = {"webhook": {"url": self.hook_url, "method": "POST", **webhook}}
        data = self.ok(SUBSCRIBE, {"input": {"eventType": event_type, "destination": destination}})
        return str(data["createEventSubscription"]["subscriptionId"])

    def knobs(self, **values: Any) -> httpx.Response:
        return self.http.put("/_sandbox/delivery/knobs", json=values)

    def emit(self, event_type: str = "PACKAGE_DELIVERED", resource: str = "order/1/delivery/2") -> dict[str, Any]:
        response = self.http.post("/_sandbox/events", json={"eventType": event_type, "resources": [resource]})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def drain(self, timeout: float = 10) -> dict[str, Any]:
        response = self.http.post("/_sandbox/deliveries/drain", params={"timeout": timeout})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def deliveries(self, state: str | None = None) -> list[dict[str, Any]]:
        return list(self.http.get("/_sandbox/deliveries", params={"state": state} if state else {}).json())


@pytest.fixture
def bwp(servers: tuple[Starlette, str, Receiver, str]) -> Iterator[Events]:
    app, url, receiver, receiver_url = servers
    app.state.sandbox.reset()
    assert app.state.sandbox.deliveries.drain(5)
    receiver.clear()
    client = Events(app, url, receiver, receiver_url)
    assert client.knobs(**DEFAULT_KNOBS).status_code == 200
    yield client
    client.http.close()


BASIC = {"basicAuthConfig": {"username": "bwp", "password": "s3cret"}}


def oauth(endpoint: str, client_id: str = "cid", secret: str = "csecret") -> dict[str, Any]:
    return {"oAuthConfig": {"clientParameters": {"clientId": client_id, "clientSecret": secret},
                            "authEndpoint": endpoint, "httpMethod": "POST",
                            "httpParameters": {"bodyParameters": [{"key": "scope", "value": "events"}]}}}


# -- auth profiles and subscriptions ----------------------------------------------------------------

def test_auth_profiles(bwp: Events) -> None:
    assert bwp.profile(BASIC, alias="my-basic") == "my-basic"
    assert bwp.profile(oauth(bwp.token_url)).startswith("auth-profile-")
    assert bwp.code(PROFILE, {"input": {"authProfileAliasId": "my-basic", "authConfig": BASIC}}) == (
        "ConflictError", "AuthProfileAlreadyExists")
    assert bwp.code(PROFILE, {"input": {"authConfig": {**BASIC, **oauth(bwp.token_url)}}}) == (
        "ValidationError", "InvalidAuthConfig")
    assert bwp.code(PROFILE, {"input": {"authConfig": {}}}) == ("ValidationError", "InvalidAuthConfig")
    for endpoint in ("http://auth.example.com/token", "ftp://127.0.0.1/token", "not a url"):
        assert bwp.code(PROFILE, {"input": {"authConfig": oauth(endpoint)}}) == (
            "ValidationError", "InvalidAuthEndpoint")
    assert bwp.ok(UPDATE_PROFILE, {"input": {"authProfileId": "my-basic", "authConfig": oauth(bwp.token_url)}}) == {
        "updateAuthProfile": {"authProfileId": "my-basic"}}
    assert bwp.code(UPDATE_PROFILE, {"input": {"authProfileId": "nope", "authConfig": BASIC}}) == (
        "ResourceNotFoundError", "AuthProfileNotFound")
    admin = bwp.http.get("/_sandbox/subscriptions").json()
    assert admin["authProfiles"]["my-basic"]["clientSecret"] == "***"
    assert "csecret" not in bwp.http.get("/_sandbox/subscriptions").text


def test_subscriptions(bwp: Events) -> None:
    profile = bwp.profile(BASIC)
    first = bwp.subscribe("PACKAGE_DELIVERED", authProfileId=profile)
    found = bwp.ok(SUBSCRIPTION, {"id": first})["eventSubscription"]
    assert found == {"subscriptionId": first, "targetId": TARGET_ID, "eventSubscriptionDetails": {
        "eventType": "PACKAGE_DELIVERED",
        "destination": {"__typename": "WebhookData", "url": bwp.hook_url, "method": "POST",
                        "authProfileId": profile}}}
    assert bwp.code(SUBSCRIBE, {"input": {"eventType": "PACKAGE_DELIVERED", "destination": {
        "webhook": {"url": bwp.hook_url, "httpMethod": "POST"}}}}) == ("ConflictError", "SubscriptionAlreadyExists")
    bridge = {"eventBridge": {"region": "us-east-1", "partnerEventSource": {"account": "123", "name": "pb"}}}
    second = bwp.ok(SUBSCRIBE, {"input": {"eventType": "REFUND_REQUESTED", "destination": bridge}})
    second_id = second["createEventSubscription"]["subscriptionId"]
    arn = bwp.ok(SUBSCRIPTION, {"id": second_id})["eventSubscription"]["eventSubscriptionDetails"]["destination"]
    assert arn == {"__typename": "EventBridgeData",
                   "arn": "arn:aws:events:us-east-1::event-source/aws.partner/buywithprime/pb"}
    assert bwp.code(SUBSCRIBE, {"input": {"eventType": "PACKAGE_DELIVERED", "destination": bridge}}) == (
        "ConflictError", "DestinationNameAlreadyExists")
    listed = bwp.ok(SUBSCRIPTIONS, {})["eventSubscriptions"]
    assert listed["totalCount"] == 2 and {e["node"]["id"] for e in listed["edges"]} == {first, second_id}
    assert bwp.ok(UNSUBSCRIBE, {"id": first}) == {"deleteEventSubscription": {"subscriptionId": first}}
    assert bwp.code(SUBSCRIPTION, {"id": first}) == ("AccessDeniedError", "SubscriptionNotFound")
    assert bwp.code(UNSUBSCRIBE, {"id": first}) == ("AccessDeniedError", "SubscriptionNotFound")


@pytest.mark.parametrize(("event_type", "destination", "expected"), [
    ("ORDER_SHIPPED", {"webhook": {"url": "https://x.example/hook"}}, ("AccessDeniedError", "InvalidEventType")),
    ("PACKAGE_DELIVERED", {}, ("ValidationError", "InvalidDestination")),
    ("PACKAGE_DELIVERED", {"webhook": {"url": "http://x.example/hook"}}, ("ValidationError", "InvalidWebhookUrl")),
    ("PACKAGE_DELIVERED", {"webhook": {"url": "https://x.example/hook", "authProfileId": "nope"}},
     ("ResourceNotFoundError", "AuthProfileNotFound")),
    ("PACKAGE_DELIVERED", {"webhook": {"url": "https://x.example/hook", "authProfileId": "p", "authConfig": BASIC}},
     ("ValidationError", "InvalidDestination")),
])
def test_subscription_refusals(bwp: Events, event_type: str, destination: dict[str, Any],
                               expected: tuple[str, str]) -> None:
    assert bwp.code(SUBSCRIBE, {"input": {"eventType": event_type, "destination": destination}}) == expected
    assert bwp.ok(SUBSCRIPTIONS, {})["eventSubscriptions"]["totalCount"] == 0


# -- delivery ---------------------------------------------------------------------------------------

def test_package_events_reach_the_webhook_with_basic_auth(bwp: Events) -> None:
    profile = bwp.profile(BASIC)
    subscriptions = {event: bwp.subscribe(event, authProfileId=profile)
                     for event in ("PACKAGE_DELIVERY_IN_TRANSIT", "PACKAGE_DELIVERED")}
    order = bwp.create()
    [package_id] = packages(order)
    bwp.update(order["id"], state(package_id, "IN_TRANSIT"))
    bwp.update(order["id"], state(package_id, "DELIVERED"))
    assert bwp.drain()["delivered"] == 2
    published = {e["eventType"]: e for e in bwp.events()}
    resource = f"businessProduct/{BP}/order/{order['id']}/delivery/{package_id}"
    bodies = bwp.receiver.bodies()
    assert [b["eventDescriptor"] for b in bodies] == ["PACKAGE_DELIVERY_IN_TRANSIT", "PACKAGE_DELIVERED"]
    for body in bodies:
        event = published[body["eventDescriptor"]]
        subscription = subscriptions[body["eventDescriptor"]]
        assert body == {"idempotencyKey": base64.b64encode(f"{subscription}#{event['eventId']}".encode()).decode(),
                        "eventDescriptor": event["eventType"], "resources": [resource], "eventId": event["eventId"],
                        "apiVersion": "2024-11-01", "subscriptionId": subscription,
                        "eventTime": event["eventTime"], "data": {}}
    expected_auth = "Basic " + base64.b64encode(b"bwp:s3cret").decode()
    assert all(headers["authorization"] == expected_auth for headers, _ in bwp.receiver.hooks)
    assert all(headers["content-type"] == "application/json" for headers, _ in bwp.receiver.hooks)


def test_only_subscribed_webhook_events_are_delivered(bwp: Events) -> None:
    bwp.subscribe("PACKAGE_DELIVERED")
    bridge = {"eventBridge": {"region": "us-east-1", "partnerEventSource": {"account": "123", "name": "pb"}}}
    bwp.ok(SUBSCRIBE, {"input": {"eventType": "REFUND_REQUESTED", "destination": bridge}})
    assert bwp.emit("REFUND_REQUESTED", "order/1/refund/ab")["deliveries"] == 0
    assert bwp.emit("INVENTORY_CHANGED", "inventory-item/1")["deliveries"] == 0
    assert bwp.emit("PACKAGE_DELIVERED")["deliveries"] == 1
    bwp.drain()
    assert [b["eventDescriptor"] for b in bwp.receiver.bodies()] == ["PACKAGE_DELIVERED"]
    assert "authorization" not in bwp.receiver.hooks[0][0]  # a subscription without auth sends none


def test_oauth_profile_token_is_fetched_cached_renewed_and_rotated(bwp: Events) -> None:
    profile = bwp.profile(oauth(bwp.token_url), alias="oauth")
    bwp.subscribe("PACKAGE_DELIVERED", authProfileId=profile)
    for _ in range(3):
        bwp.emit()
    bwp.drain()
    assert len(bwp.receiver.token_calls) == 1
    headers, form = bwp.receiver.token_calls[0]
    assert form == {"grant_type": "client_credentials", "scope": "events"}
    assert headers["authorization"] == "Basic " + base64.b64encode(b"cid:csecret").decode()
    assert {h["authorization"] for h, _ in bwp.receiver.hooks} == {"Bearer tok-1"}
    # The webhook refuses the token: the delivery fails once, a new token is fetched, the retry succeeds.
    bwp.receiver.refused_tokens.add("tok-1")
    bwp.emit()
    bwp.drain()
    [delivery] = [d for d in bwp.deliveries() if d["attempts"] > 1]
    assert (delivery["state"], delivery["attempts"]) == ("delivered", 2)
    assert bwp.receiver.hooks[-1][0]["authorization"] == "Bearer tok-2"
    # Rotating the profile's secret makes the next delivery fetch a token with the new credentials.
    bwp.ok(UPDATE_PROFILE, {"input": {"authProfileId": profile, "authConfig": oauth(bwp.token_url, secret="new")}})
    bwp.knobs(oauth_client_auth="body")
    bwp.emit()
    bwp.drain()
    headers, form = bwp.receiver.token_calls[-1]
    assert form["client_id"] == "cid" and form["client_secret"] == "new" and "authorization" not in headers
    assert bwp.receiver.hooks[-1][0]["authorization"] == "Bearer tok-3"


def test_failed_token_request_fails_the_attempt(bwp: Events) -> None:
    bwp.subscribe("PACKAGE_DELIVERED", authConfig=oauth(bwp.token_url.replace("/token", "/missing")))
    bwp.knobs(max_attempts=2)
    bwp.emit()
    bwp.drain()
    [delivery] = bwp.deliveries()
    assert delivery["state"] == "failed" and "token endpoint answered HTTP 404" in delivery["lastError"]
    assert bwp.receiver.hooks == []


def verify(jwks: dict[str, Any], headers: dict[str, str], body: bytes, fmt: str) -> None:
    key = next(k for k in jwks["keys"] if k["kid"] == headers["x-amzn-kid"])
    assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-384", "ES384")
    public = jwt.algorithms.ECAlgorithm.from_jwk(key)
    signature = base64.b64decode(headers["x-amzn-signature"])
    if fmt == "raw":
        assert len(signature) == 96
        signature = encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
    public.verify(signature, body, ec.ECDSA(hashes.SHA384()))  # type: ignore[union-attr]
    with pytest.raises(InvalidSignature):
        public.verify(signature, body + b" ", ec.ECDSA(hashes.SHA384()))  # type: ignore[union-attr]


@pytest.mark.parametrize("fmt", ["der", "raw"])
def test_signed_deliveries_verify_against_the_jwks(bwp: Events, fmt: str) -> None:
    bwp.subscribe("PACKAGE_DELIVERED")
    bwp.emit()
    bwp.drain()
    assert "x-amzn-signature" not in bwp.receiver.hooks[0][0]  # off by default
    bwp.knobs(sign=True, signature_format=fmt)
    bwp.emit()
    bwp.drain()  # signed at delivery time: delivered before the rotation, so with the first key
    new_kid = bwp.http.post("/_sandbox/signing/rotate").json()["kid"]
    bwp.emit()
    bwp.drain()
    jwks = bwp.http.get("/jwks.json").json()
    assert len(jwks["keys"]) == 2 and new_kid in {k["kid"] for k in jwks["keys"]}
    assert bwp.receiver.hooks[2][0]["x-amzn-kid"] == new_kid
    for headers, body in bwp.receiver.hooks[1:]:
        verify(jwks, headers, body, fmt)
    assert bwp.receiver.hooks[1][0]["x-amzn-kid"] != bwp.receiver.hooks[2][0]["x-amzn-kid"]


def test_failed_deliveries_are_retried_then_given_up(bwp: Events) -> None:
    bwp.subscribe("PACKAGE_DELIVERED")
    bwp.receiver.statuses.extend([500, 503])
    bwp.emit()
    bwp.drain()
    [delivery] = bwp.deliveries()
    assert (delivery["state"], delivery["attempts"], delivery["lastStatus"]) == ("delivered", 3, 200)
    assert len(bwp.receiver.hooks) == 3 and len({body for _, body in bwp.receiver.hooks}) == 1
    bwp.knobs(max_attempts=2)
    bwp.receiver.statuses.extend([500] * 5)
    bwp.emit()
    bwp.drain()
    [failed] = bwp.deliveries("failed")
    assert failed["attempts"] == 2 and failed["lastStatus"] == 500 and failed["lastError"].startswith("HTTP 500")


def test_injected_failures_send_nothing_and_are_retried(bwp: Events) -> None:
    bwp.subscribe("PACKAGE_DELIVERED")
    bwp.knobs(failure_rate=1.0, max_attempts=3)
    bwp.emit()
    bwp.drain()
    [delivery] = bwp.deliveries()
    assert (delivery["state"], delivery["attempts"]) == ("failed", 3)
    assert "failure_rate" in delivery["lastError"] and bwp.receiver.hooks == []


def test_duplicates_carry_the_same_idempotency_key(bwp: Events) -> None:
    bwp.subscribe("PACKAGE_DELIVERED")
    bwp.knobs(duplicate_rate=1.0)
    bwp.emit()
    bwp.emit()
    bwp.drain()
    bodies = bwp.receiver.bodies()
    assert len(bodies) == 4
    keys = [b["idempotencyKey"] for b in bodies]
    assert len(set(keys)) == 2 and all(keys.count(k) == 2 for k in keys)
    assert sum(d["duplicate"] for d in bwp.deliveries()) == 2


def test_reordering_window_lets_later_events_overtake(bwp: Events) -> None:
    bwp.subscribe("PACKAGE_DELIVERED")
    bwp.knobs(reorder_window_ms=300)
    published = [bwp.emit(resource=f"order/{n}/delivery/{n}")["event"]["eventId"] for n in range(12)]
    bwp.drain()
    arrived = [b["eventId"] for b in bwp.receiver.bodies()]
    assert sorted(arrived) == sorted(published) and arrived != published


def test_delay_and_drain(bwp: Events) -> None:
    bwp.subscribe("PACKAGE_DELIVERED")
    bwp.knobs(delay_ms=60_000)
    bwp.emit()
    assert [d["state"] for d in bwp.deliveries()] == ["pending"]
    response = bwp.http.post("/_sandbox/deliveries/drain", params={"timeout": 0.2})
    assert response.status_code == 504 and response.json()["drained"] is False and response.json()["pending"] == 1
    assert bwp.receiver.hooks == []
    bwp.http.post("/_sandbox/reset")
    assert bwp.deliveries() == [] and bwp.drain(1)["drained"] is True


def test_a_deleted_subscription_stops_its_pending_deliveries(bwp: Events) -> None:
    subscription = bwp.subscribe("PACKAGE_DELIVERED")
    bwp.receiver.statuses.extend([500])
    bwp.knobs(retry_base_ms=300, retry_max_ms=300)
    bwp.emit()
    bwp.ok(UNSUBSCRIBE, {"id": subscription})
    bwp.drain()
    [delivery] = bwp.deliveries()
    assert delivery["state"] == "failed" and delivery["lastError"] == "the subscription was deleted"
    assert len(bwp.receiver.hooks) <= 1


def test_eventbridge_envelope_knob(bwp: Events) -> None:
    subscription = bwp.subscribe("PACKAGE_DELIVERED")
    bwp.knobs(envelope="eventbridge")
    event = bwp.emit()["event"]
    bwp.drain()
    [body] = bwp.receiver.bodies()
    assert body["detail-type"] == "PACKAGE_DELIVERED" and body["version"] == "0"
    assert body["source"].startswith("aws.partner/buywithprime/") and body["resources"] == event["resources"]
    assert body["detail"]["eventId"] == event["eventId"] and body["detail"]["subscriptionId"] == subscription
    assert body["id"] != event["eventId"]


@pytest.mark.parametrize("values", [{"duplicate_rate": 2}, {"nope": 1}, {"envelope": "sqs"}, {"sign": "yes"},
                                    {"concurrency": 0}, {"max_attempts": "x"}, {"delay_ms": -1}])
def test_bad_delivery_knobs_are_refused_whole(bwp: Events, values: dict[str, Any]) -> None:
    before = bwp.http.get("/_sandbox/delivery/knobs").json()
    response = bwp.knobs(**values, failure_rate=0.5)
    assert response.status_code == 400 and response.json()["error"]
    assert bwp.http.get("/_sandbox/delivery/knobs").json() == before


def test_concurrent_workers_deliver_everything_once(bwp: Events) -> None:
    bwp.subscribe("PACKAGE_DELIVERED")
    bwp.knobs(concurrency=4)
    published = {bwp.emit(resource=f"order/{n}/delivery/{n}")["event"]["eventId"] for n in range(40)}
    counts = bwp.drain()
    assert counts["delivered"] == 40 and counts["failed"] == 0
    assert sorted(b["eventId"] for b in bwp.receiver.bodies()) == sorted(published)
