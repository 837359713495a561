"""Auth profiles and event subscriptions of the sandbox (reference §3.3, §3.4).

Documented behaviour reproduced here:

- ``createAuthProfile`` takes exactly one of ``oAuthConfig`` / ``basicAuthConfig``; the optional
  ``authProfileAliasId`` becomes the profile id. An OAuth ``authEndpoint`` must be https (the docs
  show an http endpoint as an error case); the sandbox also accepts http for loopback hosts, so a
  local primebridge can be the token endpoint. ``updateAuthProfile`` replaces the config (secret
  rotation); the delivery thread then fetches a new token.
- ``createEventSubscription``: one event type per call, destination ``webhook`` (``url``,
  ``method``/``httpMethod`` POST, ``authProfileId`` or inline ``authConfig`` or no auth) or
  ``eventBridge``. The same event type to the same destination again is ``SubscriptionAlreadyExists``;
  an EventBridge partner source name in use is ``DestinationNameAlreadyExists``. An unknown event
  type, or an unknown subscription id on query/delete, is an ``AccessDeniedError`` as the docs show.
- The sandbox delivers to webhook destinations only. EventBridge subscriptions are kept and listed.

Error codes that the docs do not name (``InvalidAuthConfig``, ``InvalidWebhookUrl``, ...) are ours.
"""

from __future__ import annotations

import ipaddress
import threading
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from primebridge.sandbox.amazon.events import EVENT_TYPES
from primebridge.sandbox.amazon.validation import SandboxFault, invalid

JSON = dict[str, Any]
MAX_PROFILE_ID = 50


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """How the sandbox authenticates to a webhook: ``basic`` or ``oauth`` (client credentials)."""

    kind: str
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    auth_endpoint: str | None = None
    body_parameters: tuple[tuple[str, str], ...] = ()
    header_parameters: tuple[tuple[str, str], ...] = ()

    def redacted(self) -> JSON:
        if self.kind == "basic":
            return {"kind": "basic", "username": self.username, "password": "***"}
        return {"kind": "oauth", "clientId": self.client_id, "clientSecret": "***",
                "authEndpoint": self.auth_endpoint, "bodyParameters": [k for k, _ in self.body_parameters],
                "headerParameters": [k for k, _ in self.header_parameters]}


@dataclass(frozen=True, slots=True)
class Subscription:
    subscription_id: str
    event_type: str
    kind: str  # "webhook" | "eventBridge"
    url: str | None = None
    auth_profile_id: str | None = None
    inline_auth: AuthConfig | None = None
    region: str | None = None
    account: str | None = None
    source_name: str | None = None

    def destination_key(self) -> tuple[str, ...]:
        if self.kind == "webhook":
            return ("webhook", self.url or "")
        return ("eventBridge", self.account or "", self.source_name or "")

    def destination_json(self) -> JSON:
        if self.kind == "webhook":
            return {"__typename": "WebhookData", "url": self.url, "method": "POST",
                    "authProfileId": self.auth_profile_id}
        return {"__typename": "EventBridgeData",
                "arn": f"arn:aws:events:{self.region}::event-source/aws.partner/buywithprime/{self.source_name}"}


DENIED = "You do not have sufficient access to perform this action."


def access_denied(code: str, message: str = DENIED) -> SandboxFault:
    return SandboxFault("AccessDeniedError", code, message)


def url_allowed(url: str) -> bool:
    """https anywhere; http only to a loopback host (a local primebridge in tests and the demo)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def auth_config(raw: JSON | None, where: str) -> AuthConfig:
    raw = raw or {}
    oauth, basic = raw.get("oAuthConfig"), raw.get("basicAuthConfig")
    if (oauth is None) == (basic is None):
        raise invalid("InvalidAuthConfig", f"{where} needs exactly one of oAuthConfig, basicAuthConfig")
    if basic is not None:
        if not basic["username"]:
            raise invalid("InvalidAuthConfig", f"{where}.basicAuthConfig.username is empty")
        return AuthConfig(kind="basic", username=basic["username"], password=basic["password"])
    endpoint = oauth["authEndpoint"]
    if not url_allowed(endpoint):
        raise invalid("InvalidAuthEndpoint",
                      f"{where}.oAuthConfig.authEndpoint {endpoint!r} must be an https URL")
    client = oauth["clientParameters"]
    if not client["clientId"]:
        raise invalid("InvalidAuthConfig", f"{where}.oAuthConfig.clientParameters.clientId is empty")
    params = oauth.get("httpParameters") or {}
    return AuthConfig(
        kind="oauth", client_id=client["clientId"], client_secret=client["clientSecret"], auth_endpoint=endpoint,
        body_parameters=tuple((p["key"], p["value"]) for p in params.get("bodyParameters") or [] if p),
        header_parameters=tuple((p["key"], p["value"]) for p in params.get("headerParameters") or [] if p))


class Subscriptions:
    """Thread-safe store of auth profiles and subscriptions. ``target_id`` is echoed in queries."""

    def __init__(self, target_id: str) -> None:
        self.target_id = target_id
        self._lock = threading.Lock()
        self._profiles: dict[str, tuple[AuthConfig, int]] = {}
        self._subscriptions: dict[str, Subscription] = {}

    def reset(self) -> None:
        with self._lock:
            self._profiles.clear()
            self._subscriptions.clear()

    # -- auth profiles ---------------------------------------------------------------------------

    def create_auth_profile(self, data: JSON) -> JSON:
        config = auth_config(data.get("authConfig"), "authConfig")
        profile_id = data.get("authProfileAliasId") or f"auth-profile-{uuid.uuid4()}"
        if len(profile_id) > MAX_PROFILE_ID:
            raise invalid("InvalidAuthProfileAliasId", f"authProfileAliasId is longer than {MAX_PROFILE_ID}")
        with self._lock:
            if profile_id in self._profiles:
                raise SandboxFault("ConflictError", "AuthProfileAlreadyExists",
                                   f"auth profile {profile_id} exists already")
            self._profiles[profile_id] = (config, 1)
        return {"authProfileId": profile_id}

    def update_auth_profile(self, data: JSON) -> JSON:
        profile_id = data["authProfileId"]
        config = auth_config(data.get("authConfig"), "authConfig")
        with self._lock:
            if profile_id not in self._profiles:
                raise SandboxFault("ResourceNotFoundError", "AuthProfileNotFound",
                                   f"auth profile {profile_id} does not exist")
            self._profiles[profile_id] = (config, self._profiles[profile_id][1] + 1)
        return {"authProfileId": profile_id}

    def auth_for(self, subscription: Subscription) -> tuple[str, AuthConfig] | None:
        """``(cache key, config)`` the delivery uses now; the key changes when a profile is updated,
        so a cached token of the old credentials is not reused."""
        if subscription.inline_auth is not None:
            return f"inline:{subscription.subscription_id}", subscription.inline_auth
        if subscription.auth_profile_id is None:
            return None
        with self._lock:
            entry = self._profiles.get(subscription.auth_profile_id)
        if entry is None:
            return None
        return f"profile:{subscription.auth_profile_id}:{entry[1]}", entry[0]

    # -- subscriptions ---------------------------------------------------------------------------

    def create_subscription(self, data: JSON) -> JSON:
        event_type = data["eventType"]
        if event_type not in EVENT_TYPES:
            raise access_denied("InvalidEventType", f"eventType {event_type!r} is not a Buy with Prime event type")
        destination = data["destination"]
        webhook, bridge = destination.get("webhook"), destination.get("eventBridge")
        if (webhook is None) == (bridge is None):
            raise invalid("InvalidDestination", "destination needs exactly one of webhook, eventBridge")
        subscription_id = str(uuid.uuid4())
        if webhook is not None:
            subscription = self._webhook(subscription_id, event_type, webhook)
        else:
            source = bridge["partnerEventSource"]
            if not source["name"] or not source["account"]:
                raise invalid("InvalidDestination", "eventBridge.partnerEventSource needs account and name")
            subscription = Subscription(subscription_id, event_type, "eventBridge", region=bridge["region"],
                                        account=source["account"], source_name=source["name"])
        with self._lock:
            if subscription.auth_profile_id is not None and subscription.auth_profile_id not in self._profiles:
                raise SandboxFault("ResourceNotFoundError", "AuthProfileNotFound",
                                   f"auth profile {subscription.auth_profile_id} does not exist")
            for other in self._subscriptions.values():
                if other.destination_key() == subscription.destination_key() and other.event_type == event_type:
                    raise SandboxFault("ConflictError", "SubscriptionAlreadyExists",
                                       f"subscription {other.subscription_id} already sends {event_type} "
                                       "to this destination")
                if subscription.kind == "eventBridge" and other.source_name == subscription.source_name:
                    raise SandboxFault("ConflictError", "DestinationNameAlreadyExists",
                                       f"partner event source name {subscription.source_name} is taken")
            self._subscriptions[subscription_id] = subscription
        return {"subscriptionId": subscription_id}

    @staticmethod
    def _webhook(subscription_id: str, event_type: str, webhook: JSON) -> Subscription:
        url = webhook["url"]
        if not url_allowed(url):
            raise invalid("InvalidWebhookUrl", f"webhook.url {url!r} must be an https URL")
        if webhook.get("authProfileId") is not None and webhook.get("authConfig") is not None:
            raise invalid("InvalidDestination", "webhook takes authProfileId or authConfig, not both")
        inline = auth_config(webhook["authConfig"], "webhook.authConfig") if webhook.get("authConfig") else None
        return Subscription(subscription_id, event_type, "webhook", url=url,
                            auth_profile_id=webhook.get("authProfileId"), inline_auth=inline)

    def delete_subscription(self, subscription_id: str) -> JSON:
        with self._lock:
            if self._subscriptions.pop(subscription_id, None) is None:
                raise access_denied("SubscriptionNotFound")
        return {"subscriptionId": subscription_id}

    def subscription(self, subscription_id: str) -> JSON:
        with self._lock:
            found = self._subscriptions.get(subscription_id)
        if found is None:
            raise access_denied("SubscriptionNotFound")
        return {"subscriptionId": found.subscription_id, "targetId": self.target_id,
                "eventSubscriptionDetails": self._details(found)}

    def connection(self) -> JSON:
        with self._lock:
            found = list(self._subscriptions.values())
        return {"totalCount": len(found),
                "edges": [{"node": {"id": s.subscription_id, "eventSubscriptionDetails": self._details(s)}}
                          for s in found]}

    @staticmethod
    def _details(subscription: Subscription) -> JSON:
        return {"eventType": subscription.event_type, "destination": subscription.destination_json()}

    def webhooks_for(self, event_type: str) -> list[Subscription]:
        with self._lock:
            return [s for s in self._subscriptions.values() if s.kind == "webhook" and s.event_type == event_type]

    def get(self, subscription_id: str) -> Subscription | None:
        with self._lock:
            return self._subscriptions.get(subscription_id)

    def admin_view(self) -> JSON:
        """For ``GET /_sandbox/subscriptions``: everything but secrets."""
        with self._lock:
            profiles = {pid: {**config.redacted(), "version": version}
                        for pid, (config, version) in self._profiles.items()}
            subscriptions = [
                {"subscriptionId": s.subscription_id, "eventType": s.event_type, "kind": s.kind, "url": s.url,
                 "authProfileId": s.auth_profile_id,
                 "inlineAuth": s.inline_auth.redacted() if s.inline_auth else None,
                 "destination": s.destination_json()}
                for s in self._subscriptions.values()]
        return {"authProfiles": profiles, "subscriptions": subscriptions}


__all__ = ["AuthConfig", "Subscription", "Subscriptions", "auth_config", "url_allowed"]
