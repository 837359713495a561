"""Buy with Prime event subscriptions and auth profiles (reference §3.3, §3.4).

``subscribe`` is what ``primebridge events subscribe`` runs. It is safe to run again: the auth profile
has a fixed alias id, so a second run updates it with the current credentials (a secret rotation);
a subscription that exists already (``SubscriptionAlreadyExists``, same event type and destination)
is looked up and reported, not created twice.

The documents live in ``documents/subscriptions/``, apart from the order documents, because those
get the ``OrderFields`` fragment appended and a document with an unused fragment is invalid GraphQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import httpx

from primebridge.config import AmazonConfig
from primebridge.connectors.amazon import build_bwp_client
from primebridge.connectors.amazon.client import BwpGraphQLClient
from primebridge.connectors.amazon.errors import BadResponse, BwpError
from primebridge.connectors.http import AuditSink

DOCUMENTS = ("createAuthProfile.graphql", "updateAuthProfile.graphql", "createEventSubscription.graphql",
             "deleteEventSubscription.graphql", "eventSubscriptions.graphql")
ALREADY_SUBSCRIBED = "SubscriptionAlreadyExists"
PROFILE_EXISTS = "AuthProfileAlreadyExists"


@cache
def load_subscription_document(name: str) -> str:
    return (resources.files(__package__) / "documents" / "subscriptions" / name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    subscription_id: str
    event_type: str | None
    url: str | None = None
    auth_profile_id: str | None = None
    arn: str | None = None


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    event_type: str
    subscription_id: str | None
    created: bool


def basic_auth_config(username: str, password: str) -> dict[str, Any]:
    return {"basicAuthConfig": {"username": username, "password": password}}


def oauth_auth_config(client_id: str, client_secret: str, token_url: str) -> dict[str, Any]:
    return {"oAuthConfig": {"clientParameters": {"clientId": client_id, "clientSecret": client_secret},
                            "authEndpoint": token_url, "httpMethod": "POST",
                            "httpParameters": {"bodyParameters": [{"key": "grant_type",
                                                                   "value": "client_credentials"}]}}}


class BwpSubscriptions:
    def __init__(self, client: BwpGraphQLClient) -> None:
        self._client = client

    def _run(self, name: str, variables: dict[str, Any], field: str) -> dict[str, Any]:
        data = self._client.execute(load_subscription_document(name), variables)
        payload = data.get(field)
        if not isinstance(payload, dict):
            raise BadResponse(f"BwP {field}: no {field} object in the response")
        return payload

    def create_auth_profile(self, auth_config: dict[str, Any], alias: str | None = None) -> str:
        payload = {"authConfig": auth_config} | ({"authProfileAliasId": alias} if alias else {})
        return str(self._run("createAuthProfile.graphql", {"input": payload}, "createAuthProfile")["authProfileId"])

    def update_auth_profile(self, profile_id: str, auth_config: dict[str, Any]) -> str:
        return str(self._run("updateAuthProfile.graphql",
                             {"input": {"authProfileId": profile_id, "authConfig": auth_config}},
                             "updateAuthProfile")["authProfileId"])

    def ensure_auth_profile(self, alias: str, auth_config: dict[str, Any]) -> str:
        """Create the profile under ``alias``, or update it with the current credentials."""
        try:
            return self.create_auth_profile(auth_config, alias)
        except BwpError as exc:
            if exc.code != PROFILE_EXISTS:
                raise
        return self.update_auth_profile(alias, auth_config)

    def create_webhook_subscription(self, event_type: str, url: str, auth_profile_id: str) -> str:
        destination = {"webhook": {"url": url, "method": "POST", "authProfileId": auth_profile_id}}
        payload = self._run("createEventSubscription.graphql",
                            {"input": {"eventType": event_type, "destination": destination}},
                            "createEventSubscription")
        return str(payload["subscriptionId"])

    def subscriptions(self) -> list[SubscriptionInfo]:
        data = self._client.execute(load_subscription_document("eventSubscriptions.graphql"), {})
        connection = data.get("eventSubscriptions") or {}
        found = []
        for edge in connection.get("edges") or []:
            node = (edge or {}).get("node") or {}
            details = node.get("eventSubscriptionDetails") or {}
            destination = details.get("destination") or {}
            found.append(SubscriptionInfo(subscription_id=str(node.get("id")), event_type=details.get("eventType"),
                                          url=destination.get("url"), auth_profile_id=destination.get("authProfileId"),
                                          arn=destination.get("arn")))
        return found

    def delete_subscription(self, subscription_id: str) -> str:
        return str(self._run("deleteEventSubscription.graphql", {"subscriptionId": subscription_id},
                             "deleteEventSubscription")["subscriptionId"])

    def subscribe(self, event_types: list[str], url: str, auth_profile_id: str) -> list[SubscribeResult]:
        results = []
        for event_type in event_types:
            try:
                results.append(SubscribeResult(event_type, self.create_webhook_subscription(
                    event_type, url, auth_profile_id), created=True))
            except BwpError as exc:
                if exc.code != ALREADY_SUBSCRIBED:
                    raise
                existing = next((s.subscription_id for s in self.subscriptions()
                                 if s.event_type == event_type and s.url == url), None)
                results.append(SubscribeResult(event_type, existing, created=False))
        return results


def build_subscriptions(cfg: AmazonConfig, *, audit: AuditSink | None = None,
                        transport: httpx.BaseTransport | None = None) -> BwpSubscriptions:
    """The same audited client set-up as ``build_amazon_orders``, for the operator's subscribe command."""
    return BwpSubscriptions(build_bwp_client(cfg, audit=audit, transport=transport))
