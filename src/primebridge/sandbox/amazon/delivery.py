"""Delivery of published events to subscribed webhooks, from background threads.

Buy with Prime does not document its delivery guarantees (reference §3.5); the sandbox therefore
lets a test choose the bad cases through **delivery knobs** (``GET``/``PUT /_sandbox/delivery/knobs``):

- ``delay_ms`` (0): fixed delay between publishing an event and its first delivery attempt.
- ``reorder_window_ms`` (0): plus a random delay in ``[0, window]`` per delivery, so later events
  can overtake earlier ones.
- ``duplicate_rate`` (0): fraction of deliveries sent twice (same envelope, same ``idempotencyKey``).
- ``failure_rate`` (0): fraction of attempts the sandbox fails itself (nothing is sent); retried.
- ``max_attempts`` (5): attempts per delivery, after which it is ``failed``. A non-2xx answer or a
  network error fails an attempt too.
- ``retry_base_ms`` / ``retry_max_ms`` (200 / 5000): exponential backoff between attempts.
- ``timeout_seconds`` (5): timeout of each webhook POST and token request.
- ``concurrency`` (1): delivery threads; with 1 and no delay knobs, deliveries go out in
  publishing order.
- ``sign`` (false): add ``x-amzn-signature``/``x-amzn-kid`` (ES384, signing.py; keys at ``/jwks.json``).
- ``signature_format`` (``der``): ``der`` or ``raw`` (``r||s``) — [UNCONFIRMED] which one BwP uses.
- ``envelope`` (``webhook``): ``webhook`` or ``eventbridge``, the envelope of the POST body (events.py).
- ``oauth_client_auth`` (``basic``): how the client id/secret reach an OAuth profile's token
  endpoint, ``basic`` header or ``body`` form fields — [UNCONFIRMED].
- ``seed`` (null): seed of the random draws (read when the sandbox starts and on reset).

Authentication per subscription (reference §3.4, [UNCONFIRMED] header): a Basic profile sends
``Authorization: Basic base64(user:pass)``; an OAuth profile makes the sandbox POST
``grant_type=client_credentials`` (plus the profile's body and header parameters) to the profile's
``authEndpoint``, cache ``access_token`` until shortly before ``expires_in``, and send
``Authorization: Bearer <token>``. A 401 from the webhook drops the cached token.

Every delivery is recorded (``GET /_sandbox/deliveries``): ``pending``, ``in_flight``,
``delivered`` or ``failed``; ``POST /_sandbox/deliveries/drain`` waits until none is pending.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import httpx
import structlog

from primebridge.sandbox.amazon.events import Event, eventbridge_envelope, webhook_envelope
from primebridge.sandbox.amazon.signing import Signer
from primebridge.sandbox.amazon.subscriptions import AuthConfig, Subscription, Subscriptions

log = structlog.get_logger()

MAX_RECORDS = 20_000  # finished deliveries and events kept for the admin API
TOKEN_RENEW_BEFORE_SECONDS = 30.0
_CHOICES = {"signature_format": ("der", "raw"), "envelope": ("webhook", "eventbridge"),
            "oauth_client_auth": ("basic", "body")}


@dataclass
class DeliveryKnobs:
    delay_ms: float = 0.0
    reorder_window_ms: float = 0.0
    duplicate_rate: float = 0.0
    failure_rate: float = 0.0
    max_attempts: int = 5
    retry_base_ms: float = 200.0
    retry_max_ms: float = 5000.0
    timeout_seconds: float = 5.0
    concurrency: int = 1
    sign: bool = False
    signature_format: str = "der"
    envelope: str = "webhook"
    oauth_client_auth: str = "basic"
    seed: int | None = None

    def update(self, values: dict[str, Any]) -> None:
        """Validate everything first, then apply: a bad request changes no knob."""
        if not isinstance(values, dict):
            raise ValueError("knobs must be a JSON object")
        names = {f.name: f for f in fields(self)}
        unknown = set(values) - set(names)
        if unknown:
            raise ValueError(f"unknown delivery knobs: {', '.join(sorted(unknown))}")
        staged = asdict(self)
        for key, value in values.items():
            staged[key] = self._coerce(key, value)
        for rate in ("duplicate_rate", "failure_rate"):
            if not 0.0 <= staged[rate] <= 1.0:
                raise ValueError(f"{rate} must be between 0 and 1")
        for key in ("delay_ms", "reorder_window_ms", "retry_base_ms", "retry_max_ms"):
            if staged[key] < 0:
                raise ValueError(f"{key} must not be negative")
        if not 1 <= staged["max_attempts"] <= 50:
            raise ValueError("max_attempts must be between 1 and 50")
        if not 1 <= staged["concurrency"] <= 16:
            raise ValueError("concurrency must be between 1 and 16")
        if not 0 < staged["timeout_seconds"] <= 120:
            raise ValueError("timeout_seconds must be between 0 and 120")
        for key, value in staged.items():
            setattr(self, key, value)

    @staticmethod
    def _coerce(key: str, value: Any) -> Any:
        if key == "seed":
            return None if value is None else int(value)
        if key == "sign":
            if not isinstance(value, bool):
                raise ValueError("sign must be true or false")
            return value
        if key in _CHOICES:
            if value not in _CHOICES[key]:
                raise ValueError(f"{key} must be one of {', '.join(_CHOICES[key])}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number")
        return int(value) if key in ("max_attempts", "concurrency") else float(value)


@dataclass
class Delivery:
    delivery_id: str
    event: Event
    subscription_id: str
    url: str
    body: bytes
    duplicate: bool
    due: float
    state: str = "pending"
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"deliveryId": self.delivery_id, "eventId": self.event.event_id, "eventType": self.event.event_type,
                "resources": list(self.event.resources), "subscriptionId": self.subscription_id, "url": self.url,
                "state": self.state, "attempts": self.attempts, "duplicate": self.duplicate,
                "lastStatus": self.last_status, "lastError": self.last_error, "deliveredAt": self.delivered_at}


class _AttemptFailed(Exception):
    def __init__(self, message: str, status: int | None = None, *, final: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.final = final


class Deliverer:
    """Fans published events out to webhook subscriptions and delivers them from worker threads.

    ``publish`` never blocks on the network (the sandbox calls it with its order lock held); worker
    threads start on the first delivery. ``reset`` forgets everything, including in-flight results.
    """

    def __init__(self, subscriptions: Subscriptions, signer: Signer, knobs: DeliveryKnobs | None = None,
                 *, now_iso: Callable[[], str], clock: Callable[[], float] = time.monotonic) -> None:
        self.subscriptions = subscriptions
        self.signer = signer
        self.knobs = knobs or DeliveryKnobs()
        self._now_iso = now_iso
        self._clock = clock
        self._cond = threading.Condition()
        # Two streams, so that the publishing draws (duplicates, delays) do not depend on how the
        # worker threads' failure draws interleave with them: a seed gives the same schedule.
        self._rng = random.Random(self.knobs.seed)
        self._failure_rng = random.Random(self.knobs.seed)
        self._seq = itertools.count()
        self._heap: list[tuple[float, int, str]] = []
        self._deliveries: dict[str, Delivery] = {}
        self._events: list[Event] = []
        self._in_flight = 0
        self._generation = 0
        self._workers: list[threading.Thread] = []
        self._tokens: dict[str, tuple[str, float]] = {}
        self._http = httpx.Client(trust_env=False, follow_redirects=False)
        self._closed = False
        self.token_requests = 0

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, event: Event) -> int:
        """Record the event and queue one delivery per matching webhook subscription (plus duplicates
        as the knob says); returns the number of deliveries queued."""
        targets = self.subscriptions.webhooks_for(event.event_type)
        with self._cond:
            self._events.append(event)
            del self._events[:-MAX_RECORDS]
            queued = 0
            for subscription in targets:
                queued += self._enqueue(event, subscription, duplicate=False)
                if self._rng.random() < self.knobs.duplicate_rate:
                    queued += self._enqueue(event, subscription, duplicate=True)
            if queued:
                self._ensure_workers()
                self._cond.notify_all()
            return queued

    def _enqueue(self, event: Event, subscription: Subscription, *, duplicate: bool) -> int:
        knobs = self.knobs
        if knobs.envelope == "eventbridge":
            envelope = eventbridge_envelope(event, subscription.subscription_id)
        else:
            envelope = webhook_envelope(event, subscription.subscription_id)
        delay = knobs.delay_ms + self._rng.uniform(0, knobs.reorder_window_ms)
        delivery = Delivery(delivery_id=str(uuid.uuid4()), event=event, subscription_id=subscription.subscription_id,
                            url=subscription.url or "", body=json.dumps(envelope, separators=(",", ":")).encode(),
                            duplicate=duplicate, due=self._clock() + delay / 1000)
        self._deliveries[delivery.delivery_id] = delivery
        heapq.heappush(self._heap, (delivery.due, next(self._seq), delivery.delivery_id))
        self._prune()
        return 1

    def _prune(self) -> None:
        if len(self._deliveries) <= MAX_RECORDS:
            return
        finished = [k for k, d in self._deliveries.items() if d.state in ("delivered", "failed")]
        for key in finished[: len(self._deliveries) - MAX_RECORDS]:
            del self._deliveries[key]

    # -- admin -----------------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        with self._cond:
            return [event.to_json() for event in self._events]

    def deliveries(self, state: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [d.to_json() for d in self._deliveries.values() if state is None or d.state == state]

    def counts(self) -> dict[str, int]:
        with self._cond:
            counts = {"pending": 0, "in_flight": 0, "delivered": 0, "failed": 0}
            for delivery in self._deliveries.values():
                counts[delivery.state] += 1
            counts["events"] = len(self._events)
            return counts

    def drain(self, timeout: float) -> bool:
        """Wait until no delivery is pending or in flight (retries included); ``False`` on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._heap and self._in_flight == 0, timeout)

    def reset(self) -> None:
        with self._cond:
            self._generation += 1
            self._heap.clear()
            self._deliveries.clear()
            self._events.clear()
            self._tokens.clear()
            self._rng = random.Random(self.knobs.seed)
            self._failure_rng = random.Random(self.knobs.seed)
            self.token_requests = 0
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for worker in self._workers:
            worker.join(timeout=5)
        self._http.close()

    # -- workers ---------------------------------------------------------------------------------

    def _ensure_workers(self) -> None:
        """Called with the condition held."""
        self._workers = [w for w in self._workers if w.is_alive()]
        while len(self._workers) < self.knobs.concurrency and not self._closed:
            worker = threading.Thread(target=self._run, args=(len(self._workers),),
                                      name=f"bwp-sandbox-delivery-{len(self._workers)}", daemon=True)
            self._workers.append(worker)
            worker.start()

    def _next(self, index: int) -> tuple[Delivery, int] | None:
        with self._cond:
            while True:
                if self._closed or index >= self.knobs.concurrency:
                    return None
                now = self._clock()
                if self._heap and self._heap[0][0] <= now:
                    _, _, delivery_id = heapq.heappop(self._heap)
                    delivery = self._deliveries.get(delivery_id)
                    if delivery is None:
                        continue
                    delivery.state = "in_flight"
                    self._in_flight += 1
                    return delivery, self._generation
                self._cond.wait(self._heap[0][0] - now if self._heap else None)

    def _run(self, index: int) -> None:
        while (claimed := self._next(index)) is not None:
            delivery, generation = claimed
            try:
                status = self._attempt(delivery)
                error, final = None, False
            except _AttemptFailed as failure:
                status, error, final = failure.status, str(failure), failure.final
            except Exception as exc:  # a sandbox bug must not kill the worker
                log.exception("amazon_sandbox.delivery_crashed", delivery_id=delivery.delivery_id)
                status, error, final = None, f"sandbox error: {type(exc).__name__}: {exc}", False
            self._settle(delivery, generation, status, error, final)

    def _settle(self, delivery: Delivery, generation: int, status: int | None, error: str | None,
                final: bool) -> None:
        with self._cond:
            self._in_flight -= 1
            if generation == self._generation:
                delivery.attempts += 1
                delivery.last_status = status
                delivery.last_error = error
                knobs = self.knobs
                if error is None:
                    delivery.state = "delivered"
                    delivery.delivered_at = self._now_iso()
                elif final or delivery.attempts >= knobs.max_attempts:
                    delivery.state = "failed"
                    log.info("amazon_sandbox.delivery_failed", delivery_id=delivery.delivery_id,
                             event_type=delivery.event.event_type, attempts=delivery.attempts, error=error)
                else:
                    delivery.state = "pending"
                    backoff = min(knobs.retry_max_ms, knobs.retry_base_ms * 2 ** (delivery.attempts - 1))
                    delivery.due = self._clock() + backoff / 1000
                    heapq.heappush(self._heap, (delivery.due, next(self._seq), delivery.delivery_id))
            self._cond.notify_all()

    # -- one attempt -----------------------------------------------------------------------------

    def _attempt(self, delivery: Delivery) -> int:
        knobs = self.knobs
        with self._cond:
            roll = self._failure_rng.random()
        if roll < knobs.failure_rate:
            raise _AttemptFailed("injected failure (delivery knob failure_rate); nothing was sent")
        subscription = self.subscriptions.get(delivery.subscription_id)
        if subscription is None:
            raise _AttemptFailed("the subscription was deleted", final=True)
        headers = {"Content-Type": "application/json", "User-Agent": "bwp-sandbox-events/1"}
        auth = self.subscriptions.auth_for(subscription)
        oauth_key = None
        if auth is not None:
            key, config = auth
            if config.kind == "basic":
                raw = f"{config.username}:{config.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            else:
                oauth_key = key
                headers["Authorization"] = f"Bearer {self._token(key, config)}"
        if knobs.sign:
            headers.update(self.signer.sign(delivery.body, "raw" if knobs.signature_format == "raw" else "der"))
        try:
            response = self._http.post(delivery.url, content=delivery.body, headers=headers,
                                       timeout=knobs.timeout_seconds)
        except httpx.HTTPError as exc:
            raise _AttemptFailed(f"{type(exc).__name__}: {exc}") from None
        if 200 <= response.status_code < 300:
            return response.status_code
        if response.status_code == 401 and oauth_key is not None:
            with self._cond:
                self._tokens.pop(oauth_key, None)
        raise _AttemptFailed(f"HTTP {response.status_code}: {response.text[:200]}", response.status_code)

    def _token(self, key: str, config: AuthConfig) -> str:
        with self._cond:
            cached = self._tokens.get(key)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        form = dict(config.body_parameters)
        form.setdefault("grant_type", "client_credentials")
        auth: tuple[str, str] | None = None
        if self.knobs.oauth_client_auth == "basic":
            auth = (config.client_id or "", config.client_secret or "")
        else:
            form["client_id"] = config.client_id or ""
            form["client_secret"] = config.client_secret or ""
        try:
            response = self._http.post(config.auth_endpoint or "", data=form, headers=dict(config.header_parameters),
                                       auth=auth, timeout=self.knobs.timeout_seconds)
        except httpx.HTTPError as exc:
            raise _AttemptFailed(f"token endpoint: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise _AttemptFailed(f"token endpoint answered HTTP {response.status_code}", response.status_code)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise _AttemptFailed("token endpoint answered without an access_token")
        try:
            expires_in = float(payload.get("expires_in") or 300)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            expires_in = 300.0
        with self._cond:
            self._tokens[key] = (token, self._clock() + max(0.0, expires_in - TOKEN_RENEW_BEFORE_SECONDS))
            self.token_requests += 1
        return token
