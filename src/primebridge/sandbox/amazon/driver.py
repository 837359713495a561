"""Drives a running Buy with Prime sandbox the way a tester would in BwP's own sandbox: ship, track,
deliver, cancel and split packages (``updateOrderPackageInformation``), publish arbitrary events,
set delivery knobs and wait for deliveries. For the demo, the end-to-end tests and benchmarks, so
none of them hand-writes the sandbox mutation.

    driver = SandboxDriver("http://127.0.0.1:8101")
    package_id = driver.packages(order_id)[0]["id"]
    driver.ship(order_id, package_id)                       # PACKAGE_DELIVERY_IN_TRANSIT
    driver.milestone(order_id, package_id, "OUT_FOR_DELIVERY")
    driver.deliver(order_id, package_id)                    # PACKAGE_DELIVERED
    driver.drain()
"""

from __future__ import annotations

from typing import Any

import httpx

from primebridge.sandbox.amazon.app import API_VERSION

JSON = dict[str, Any]
_ORDER = """
query order($orderIdentifier: OrderIdentifierInput!) {
  order(orderIdentifier: $orderIdentifier) { ...Packages }
}
"""
_UPDATE = """
mutation updateOrderPackageInformation($orderIdentifier: OrderIdentifierInput!,
                                       $input: UpdateOrderPackageInformationInput!) {
  updateOrderPackageInformation(orderIdentifier: $orderIdentifier, input: $input) { order { ...Packages } }
}
"""
_FRAGMENT = """
fragment Packages on Order {
  id
  packageInformation {
    details {
      id state reason
      aliases { aliasType aliasId }
      packageInformationDetailsFor { orderLineItemAmounts { lineItem { id } amount { value } } }
      packageTracker {
        packageTrackerIdentifier { trackingNumber carrierCode }
        latestMilestone { status { code } occurredAt }
      }
    }
  }
}
"""


class SandboxError(RuntimeError):
    """The sandbox refused a call; ``code`` is the GraphQL classification code."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class SandboxDriver:
    def __init__(self, url: str, *, client_id: str = "sandbox-client", client_secret: str = "sandbox-secret",
                 target_id: str = "sandbox-target", timeout: float = 30) -> None:
        self.http = httpx.Client(base_url=url, timeout=timeout, trust_env=False)
        self._credentials = (client_id, client_secret)
        self._target_id = target_id
        self._token: str | None = None

    def close(self) -> None:
        self.http.close()

    # -- GraphQL ---------------------------------------------------------------------------------

    def graphql(self, query: str, variables: JSON) -> JSON:
        for _ in range(2):
            if self._token is None:
                response = self.http.post("/token", data={"grant_type": "client_credentials"}, auth=self._credentials)
                response.raise_for_status()
                self._token = response.json()["access_token"]
            response = self.http.post("/graphql", json={"query": query, "variables": variables}, headers={
                "Authorization": f"Bearer {self._token}", "x-api-target-id": self._target_id,
                "x-api-version": API_VERSION})
            if response.status_code == 401:
                self._token = None
                continue
            response.raise_for_status()
            body = response.json()
            if body.get("errors"):
                error = body["errors"][0]
                code = ((error.get("extensions") or {}).get("classification") or {}).get("code")
                raise SandboxError(f"{code}: {error.get('message')}", code)
            return dict(body["data"])
        raise SandboxError("the sandbox refused two fresh tokens")

    def packages(self, order_id: str) -> list[JSON]:
        """``packageInformation.details`` of the order (id, state, reason, aliases, lines, tracker)."""
        order = self.graphql(_ORDER + _FRAGMENT, {"orderIdentifier": {"orderId": order_id}})["order"]
        return list(order["packageInformation"]["details"])

    def update(self, order_id: str, *details: JSON) -> list[JSON]:
        """Raw ``updateOrderPackageInformation``; returns the packages afterwards."""
        variables = {"orderIdentifier": {"orderId": order_id},
                     "input": {"packageInformation": {"details": list(details)}}}
        order = self.graphql(_UPDATE + _FRAGMENT, variables)["updateOrderPackageInformation"]["order"]
        return list(order["packageInformation"]["details"])

    @staticmethod
    def state(package_id: str, state: str, reason: str | None = None,
              quantities: dict[str, int] | None = None) -> JSON:
        """One ``details`` entry; ``quantities`` ({line item id: units}) splits them off."""
        info: JSON = {"state": state}
        if reason is not None:
            info["reason"] = reason
        if quantities is not None:
            info["packageInformationDetailsFor"] = {"orderLineItemAmounts": [
                {"lineItemId": {"lineItemId": line}, "amount": {"value": value}} for line, value in quantities.items()]}
        return {"id": package_id, "packageState": {"packageInformationState": info}}

    def ship(self, order_id: str, package_id: str, quantities: dict[str, int] | None = None) -> list[JSON]:
        return self.update(order_id, self.state(package_id, "IN_TRANSIT", quantities=quantities))

    def deliver(self, order_id: str, package_id: str) -> list[JSON]:
        return self.update(order_id, self.state(package_id, "DELIVERED"))

    def cancel(self, order_id: str, package_id: str, reason: str = "CUSTOMER_REQUESTED",
               quantities: dict[str, int] | None = None) -> list[JSON]:
        return self.update(order_id, self.state(package_id, "CANCELLED", reason, quantities))

    def milestone(self, order_id: str, package_id: str, code: str, **extra: Any) -> list[JSON]:
        """A tracker milestone (``occurredAt``, ``message``, ``address`` optional); DELIVERED delivers."""
        tracker = next(p for p in self.packages(order_id) if p["id"] == package_id)["packageTracker"]
        if tracker is None:
            raise SandboxError(f"package {package_id} has not shipped", "PackageTrackerNotAvailableForUpdate")
        entry = {"packageTrackerIdentifier": tracker["packageTrackerIdentifier"], "state": code, **extra}
        return self.update(order_id, {"id": package_id, "packageState": {"packageTrackerState": entry}})

    # -- admin -----------------------------------------------------------------------------------

    def emit(self, event_type: str, *resources: str, data: JSON | None = None) -> JSON:
        response = self.http.post("/_sandbox/events", json={"eventType": event_type, "resources": list(resources),
                                                             "data": data or {}})
        response.raise_for_status()
        return dict(response.json())

    def knobs(self, **values: Any) -> JSON:
        response = self.http.put("/_sandbox/delivery/knobs", json=values)
        response.raise_for_status()
        return dict(response.json())

    def drain(self, timeout: float = 30) -> JSON:
        """Wait until every delivery is done; raises when the sandbox still has some after ``timeout``."""
        response = self.http.post("/_sandbox/deliveries/drain", params={"timeout": timeout},
                                  timeout=timeout + 10)
        if response.status_code == 504:
            raise SandboxError(f"deliveries not drained after {timeout} s: {response.json()}")
        response.raise_for_status()
        return dict(response.json())

    def deliveries(self, state: str | None = None) -> list[JSON]:
        response = self.http.get("/_sandbox/deliveries", params={"state": state} if state else {})
        response.raise_for_status()
        return list(response.json())
