"""Buy with Prime event intake end to end: authentication, storage before the answer, dedupe,
dispatch to the registered handlers in order, outcomes, replay and notifications.

primebridge runs as in production (``bootstrap.build`` + its ASGI app over HTTP). The handlers are
test handlers registered in ``service.event_handlers``, so these tests pin the dispatch contract
the package and inventory flows rely on, whatever those flows do.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from primebridge.domain.errors import PermanentError, Rejected
from primebridge.domain.events import AmazonEvent
from primebridge.ports import Notification
from primebridge.runtime.events import list_events
from primebridge.runtime.tables import AmazonEventRow, Job, Message
from primebridge.sandbox.server import ThreadedServer
from tests.e2e import harness
from tests.e2e.harness import BOTH_STORES, Bridge, Sandboxes, make_bridge

sandboxes = harness.sandboxes
store_url = harness.store_url
bridge = harness.bridge

BP = "businessProduct/bp-00000000-0000-4000-8000-00000000e2e0"
BASIC = "Basic " + base64.b64encode(b"bwp-sandbox:sandbox-events-password").decode()
AUTH = {"Authorization": BASIC}


def event(event_type: str = "PACKAGE_DELIVERED", order: str = "O-1", package: str = "P-1",
          event_id: str | None = None) -> dict[str, Any]:
    event_id = event_id or str(uuid.uuid4())
    return {"idempotencyKey": base64.b64encode(f"sub-1#{event_id}".encode()).decode(),
            "eventDescriptor": event_type, "resources": [f"{BP}/order/{order}/delivery/{package}"],
            "eventId": event_id, "apiVersion": "2024-11-01", "subscriptionId": "sub-1",
            "eventTime": "2025-01-20T12:34:56Z", "data": {}}


def stored(b: Bridge) -> tuple[int, int, int]:
    with b.service.db.transaction() as session:
        return (int(session.scalar(select(func.count()).select_from(Message)) or 0),
                int(session.scalar(select(func.count()).select_from(AmazonEventRow)) or 0),
                int(session.scalar(select(func.count()).select_from(Job)) or 0))


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, str | None]] = []
        self.lock = threading.Lock()

    def __call__(self, ev: AmazonEvent) -> str:
        with self.lock:
            self.seen.append((ev.event_type, ev.order_id, ev.resource("delivery")))
        time.sleep(0.01)  # widen the window in which a second job of the same order could overlap
        return f"handled {ev.resource('delivery')}"


class Captured:
    def __init__(self) -> None:
        self.notifications: list[Notification] = []

    def notify(self, notification: Notification) -> None:
        self.notifications.append(notification)


@BOTH_STORES
def test_stored_before_ack_deduplicated_and_dispatched(bridge: Bridge) -> None:
    recorder = Recorder()
    bridge.service.event_handlers["PACKAGE_DELIVERED"] = recorder
    body = event(package="P-1")
    first = bridge.post("/events/amazon", body, headers=AUTH)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "accepted"
    assert stored(bridge) == (1, 1, 1)          # committed before the answer
    again = bridge.post("/events/amazon", body, headers=AUTH)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    wrapped = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "PACKAGE_DELIVERED",
               "source": "aws.partner/buywithprime/x", "resources": body["resources"], "detail": body}
    assert bridge.post("/events/amazon", wrapped, headers=AUTH).json()["status"] == "duplicate"
    assert stored(bridge) == (1, 1, 1)
    bridge.run_until_idle()
    assert recorder.seen == [("PACKAGE_DELIVERED", "O-1", "P-1")]
    [view] = list_events(bridge.service.db)
    assert (view.status, view.outcome, view.envelope) == ("done", "handled P-1", "webhook")


def test_events_of_one_order_run_in_arrival_order(bridge: Bridge) -> None:
    recorder = Recorder()
    for kind in ("PACKAGE_DELIVERY_IN_TRANSIT", "PACKAGE_TRACKER_MILESTONE_CHANGED", "PACKAGE_DELIVERED"):
        bridge.service.event_handlers[kind] = recorder
    sent = []
    for i in range(6):
        for order in ("A", "B"):
            kind = ("PACKAGE_DELIVERY_IN_TRANSIT", "PACKAGE_TRACKER_MILESTONE_CHANGED", "PACKAGE_DELIVERED")[i % 3]
            assert bridge.post("/events/amazon", event(kind, order=order, package=f"{order}{i}"),
                               headers=AUTH).status_code == 200
            sent.append((order, f"{order}{i}"))
    bridge.run_until_idle()
    for order in ("A", "B"):
        assert [p for _, o, p in recorder.seen if o == order] == [p for o, p in sent if o == order]
    keys = {j.ordering_key for j in bridge.jobs()}
    assert keys == {"amazon:order:A", "amazon:order:B"}


def test_unknown_types_are_stored_and_ignored_and_outcomes_recorded(bridge: Bridge) -> None:
    captured = Captured()
    bridge.service.notifier = captured

    def reject(ev: AmazonEvent) -> str:
        raise Rejected(f"package {ev.resource('delivery')} is not on order {ev.order_id}")

    def broken(ev: AmazonEvent) -> str:
        raise PermanentError("OMS credentials refused")

    bridge.service.event_handlers.update(PACKAGE_DELIVERY_CANCELLED=reject, PACKAGE_DELIVERED=broken)
    for kind in ("SOMETHING_NEW", "PACKAGE_DELIVERY_CANCELLED", "PACKAGE_DELIVERED"):
        response = bridge.post("/events/amazon", event(kind, order=kind), headers=AUTH)
        assert response.status_code == 200
    assert response.json()["event_status"] == "queued"
    assert stored(bridge) == (3, 3, 2)        # no job for the type nobody handles
    bridge.run_until_idle()
    views = {v.event_type: v for v in list_events(bridge.service.db)}
    assert views["SOMETHING_NEW"].status == "ignored"
    assert views["PACKAGE_DELIVERY_CANCELLED"].status == "rejected"
    assert "is not on order PACKAGE_DELIVERY_CANCELLED" in (views["PACKAGE_DELIVERY_CANCELLED"].outcome or "")
    assert views["PACKAGE_DELIVERED"].status == "dead"
    assert "OMS credentials refused" in (views["PACKAGE_DELIVERED"].outcome or "")
    [alert] = captured.notifications
    assert alert.kind == "dead_letter" and "OMS credentials refused" in alert.text

    # Fixed and replayed: the new job processes it, the event's outcome follows the new job.
    recorder = Recorder()
    bridge.service.event_handlers.update(PACKAGE_DELIVERED=recorder, SOMETHING_NEW=recorder)
    listed = bridge.http.get("/admin/events", params={"status": "dead"}).json()
    assert [e["event_type"] for e in listed] == ["PACKAGE_DELIVERED"]
    assert bridge.post(f"/admin/events/{listed[0]['id']}/replay").status_code == 200
    assert bridge.post(f"/admin/events/{views['SOMETHING_NEW'].id}/replay").status_code == 200
    bridge.run_until_idle()
    after = {v.event_type: v.status for v in list_events(bridge.service.db)}
    assert after == {"SOMETHING_NEW": "done", "PACKAGE_DELIVERY_CANCELLED": "rejected", "PACKAGE_DELIVERED": "done"}


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Basic " + base64.b64encode(b"bwp-sandbox:wrong").decode()},
    {"Authorization": "Basic " + base64.b64encode(b"someone:sandbox-events-password").decode()},
    {"Authorization": "Basic !!notbase64"},
    {"Authorization": "Bearer not-a-token"},
    {"Authorization": "Bearer " + jwt.encode({"sub": "bwp-sandbox", "exp": time.time() + 60, "iat": time.time(),
                                              "aud": "primebridge-events", "iss": "primebridge"},
                                             "guessed-key-guessed-key-guessed-key", algorithm="HS256")},
    {"Authorization": "Digest abc"},
])
def test_unauthenticated_deliveries_get_401_and_nothing_is_stored(bridge: Bridge, headers: dict[str, str]) -> None:
    response = bridge.post("/events/amazon", event(), headers=headers)
    assert response.status_code == 401
    assert "unauthorized" in response.json()["error"]
    assert stored(bridge) == (0, 0, 0)


def test_oauth_client_credentials_token_endpoint(bridge: Bridge) -> None:
    form = {"grant_type": "client_credentials", "scope": "events"}
    refused = bridge.http.post("/oauth/token", data=form, auth=("bwp-sandbox", "wrong"))
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    wrong_grant = bridge.http.post("/oauth/token", data={"grant_type": "password"}, auth=("bwp-sandbox", "x"))
    assert wrong_grant.json()["error"] == "unsupported_grant_type"
    for kwargs in ({"data": form, "auth": ("bwp-sandbox", "sandbox-events-secret")},
                   {"data": {**form, "client_id": "bwp-sandbox", "client_secret": "sandbox-events-secret"}}):
        issued = bridge.http.post("/oauth/token", **kwargs)
        assert issued.status_code == 200, issued.text
        assert issued.json()["token_type"] == "Bearer" and issued.json()["expires_in"] == 900
        assert issued.headers["cache-control"] == "no-store"
        bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
        assert bridge.post("/events/amazon", event(), headers=bearer).status_code == 200
    assert stored(bridge)[1] == 2


def test_malformed_bodies_get_400_naming_the_problem(bridge: Bridge) -> None:
    cases = [
        (b"{not json", "not valid JSON"),
        (json.dumps({**event(), "resources": [f"{BP}/order"]}).encode(), "'order' has no value"),
        (json.dumps({k: v for k, v in event().items() if k not in ("eventId", "idempotencyKey")}).encode(),
         "cannot be deduplicated"),
    ]
    for content, words in cases:
        response = bridge.post("/events/amazon", content=content, headers={**AUTH, "Content-Type": "application/json"})
        assert response.status_code == 400 and words in response.json()["error"], response.text
    huge = bridge.post("/events/amazon", content=b"{" + b" " * 300_000 + b"}", headers=AUTH)
    assert huge.status_code == 413
    assert stored(bridge) == (0, 0, 0)


@pytest.fixture
def jwks() -> Iterator[tuple[dict[str, Any], ThreadedServer]]:
    """A JWKS endpoint on 127.0.0.1 whose key set a test can rotate."""
    keys: dict[str, Any] = {"keys": []}
    fetches: list[float] = []

    async def serve(request: Request) -> JSONResponse:
        fetches.append(time.time())
        return JSONResponse(keys)

    server = ThreadedServer(Starlette(routes=[Route("/jwks.json", serve)]), name="jwks").start()
    keys["fetches"] = fetches
    try:
        yield keys, server
    finally:
        server.stop()


def _jwk(kid: str, key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes(48, "big")).rstrip(b"=").decode()

    return {"kty": "EC", "crv": "P-384", "kid": kid, "use": "sig", "alg": "ES384", "x": b64(numbers.x),
            "y": b64(numbers.y)}


def _sign(key: ec.EllipticCurvePrivateKey, body: bytes) -> str:
    return base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA384()))).decode()   # DER, as cryptography signs


def test_signature_verification_with_key_rotation(sandboxes: Sandboxes, tmp_path: Path,
                                                  jwks: tuple[dict[str, Any], ThreadedServer]) -> None:
    keys, server = jwks
    old, new = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    keys["keys"] = [_jwk("k1", old)]
    sandboxes.reset()
    b = make_bridge(sandboxes, f"sqlite:///{tmp_path / 'sig.db'}", overrides={
        "events.verify_signature": True, "events.jwks_url": f"{server.url}/jwks.json",
        "events.jwks_refetch_seconds": 0})
    try:
        def deliver(body: bytes, signature: str | None, kid: str) -> httpx.Response:
            headers = {**AUTH, "x-amzn-kid": kid}
            if signature is not None:
                headers["x-amzn-signature"] = signature
            return b.post("/events/amazon", content=body, headers=headers)

        first = json.dumps(event()).encode()
        assert deliver(first, _sign(old, first), "k1").status_code == 200
        assert deliver(json.dumps(event()).encode(), None, "k1").status_code == 401      # unsigned
        other = json.dumps(event()).encode()
        tampered = deliver(other.replace(b"O-1", b"O-2"), _sign(old, other), "k1")
        assert tampered.status_code == 401 and "does not match" in tampered.json()["error"]
        keys["keys"] = [_jwk("k1", old), _jwk("k2", new)]                                # rotation
        rotated = json.dumps(event()).encode()
        assert deliver(rotated, _sign(new, rotated), "k2").status_code == 200
        wrong = json.dumps(event()).encode()
        assert deliver(wrong, _sign(new, wrong), "k1").status_code == 401               # wrong key for kid
        assert stored(b)[1] == 2
        assert len(keys["fetches"]) == 2      # cached, refetched once for the new kid
    finally:
        b.close()


def test_subscription_documents_validate_against_the_sandbox_schema() -> None:
    from graphql import parse, validate

    from primebridge.connectors.amazon.subscriptions import DOCUMENTS, load_subscription_document
    from primebridge.sandbox.amazon.app import schema

    for name in DOCUMENTS:
        assert validate(schema(), parse(load_subscription_document(name))) == [], name


def test_events_subscribe_list_and_replay_commands(sandboxes: Sandboxes, tmp_path: Path) -> None:
    """The operator's commands against the Amazon sandbox, with a config file as in production."""
    from typer.testing import CliRunner

    from primebridge.entrypoints.cli import app as cli
    from tests.e2e.test_cli import write_config

    sandboxes.reset()
    config = write_config(tmp_path / "pb.toml", sandboxes, tmp_path / "cli.db", **{
        "web.public_url": "http://127.0.0.1:8080",
        "events.event_types": ["PACKAGE_DELIVERY_IN_TRANSIT", "PACKAGE_DELIVERED"]})

    def pb(*args: str) -> str:
        result = CliRunner().invoke(cli, [*args, "--config", str(config)], env={"COLUMNS": "4000"},
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    first = pb("events", "subscribe")
    assert first.count("created") == 2 and "oauth" in first
    again = pb("events", "subscribe")                     # idempotent: profile updated, nothing new
    assert again.count("existed") == 2 and "created" not in again
    listed = httpx.get(f"{sandboxes.urls['amazon']}/_sandbox/subscriptions").json()
    text = json.dumps(listed)
    assert "http://127.0.0.1:8080/events/amazon" in text and "http://127.0.0.1:8080/oauth/token" in text
    assert "sandbox-events-secret" not in text
    assert pb("events", "subscriptions").count("http://127.0.0.1:8080/events/amazon") == 2

    # Received events (stored by a service on the same store), listed and replayed by the CLI.
    b = make_bridge(sandboxes, f"sqlite:///{tmp_path / 'cli.db'}")
    try:
        recorder = Recorder()
        b.service.event_handlers["PACKAGE_DELIVERED"] = recorder
        assert b.post("/events/amazon", event(order="C-1", event_id="ev-cli-1"), headers=AUTH).status_code == 200
        b.run_until_idle()
        assert "done" in pb("events", "list", "--order", "C-1")
        assert "job" in pb("events", "replay", "ev-cli-1")
        b.run_until_idle()
        assert recorder.seen == [("PACKAGE_DELIVERED", "C-1", "P-1")] * 2
        assert "still waiting" not in pb("events", "replay", "--since", "2000-01-01T00:00:00Z")
        b.run_until_idle()

        # A mistyped id among good ones is named and fails the command; the good ones are replayed.
        def pb_fails(*args: str) -> str:
            result = CliRunner().invoke(cli, [*args, "--config", str(config)], env={"COLUMNS": "4000"})
            assert result.exit_code != 0, result.output
            return result.output

        out = pb_fails("events", "replay", "ev-cli-1", "ev-typo")
        assert "no such event: ev-typo" in out and "job" in out
        assert "no such event: 999" in pb_fails("events", "replay", "999")
        assert "not one of" in pb_fails("events", "list", "--status", "finished")
    finally:
        b.close()


def test_notifiers_deliver_by_webhook_and_smtp() -> None:
    """The webhook and e-mail notifiers against local receivers; an unreachable target is logged, not raised."""
    import socketserver

    from primebridge.config import NotifyConfig
    from primebridge.runtime.notify import build_notifier

    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({})

    mails: list[str] = []

    class Smtp(socketserver.StreamRequestHandler):
        """Just enough SMTP for smtplib's send_message (RFC 5321 happy path)."""

        def handle(self) -> None:
            self.wfile.write(b"220 test\r\n")
            while line := self.rfile.readline():
                verb = line[:4].upper()
                if verb == b"DATA":
                    self.wfile.write(b"354 go\r\n")
                    data = b"".join(iter(self.rfile.readline, b".\r\n"))
                    mails.append(data.decode())
                    self.wfile.write(b"250 ok\r\n")
                elif verb == b"QUIT":
                    self.wfile.write(b"221 bye\r\n")
                    return
                else:
                    self.wfile.write(b"250 ok\r\n")

    note = Notification(kind="delivery_failure", subject="package P-1 will not arrive", text="LOST at carrier",
                        details={"order": "O-1"})
    with ThreadedServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), name="hook") as server, \
            socketserver.ThreadingTCPServer(("127.0.0.1", 0), Smtp) as smtp:
        threading.Thread(target=smtp.serve_forever, daemon=True).start()
        build_notifier(NotifyConfig(kind="webhook", webhook_url=f"{server.url}/hook")).notify(note)
        build_notifier(NotifyConfig(kind="smtp", smtp_host="127.0.0.1", smtp_port=smtp.server_address[1],
                                    smtp_from="pb@example.com", smtp_to=["ops@example.com"])).notify(note)
        smtp.shutdown()
    assert received == [note.as_json()]
    [mail] = mails
    assert "Subject: [primebridge] package P-1 will not arrive" in mail and "LOST at carrier" in mail
    assert "order: O-1" in mail
    build_notifier(NotifyConfig(kind="webhook", webhook_url=harness.closed_port_url())).notify(note)  # no raise
