"""A local NetSuite: REST record service (sales orders, fulfilments), SuiteQL, TBA and OAuth 2.0 M2M
logins, concurrency governance, fault knobs, and an admin API under ``/_sandbox/`` to seed orders,
simulate user changes and read counters."""

from primebridge.sandbox.netsuite.app import create_app
from primebridge.sandbox.netsuite.state import SandboxState

__all__ = ["SandboxState", "create_app"]
