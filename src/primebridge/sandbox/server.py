"""Runs a sandbox ASGI app on a real loopback port in a background thread.

The connectors are synchronous httpx clients, which cannot call an ASGI app in-process; a real
server also exercises the same HTTP stack a merchant's deployment does.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ThreadedServer:
    """``with ThreadedServer(app) as srv: srv.url`` — starts uvicorn, waits until it listens."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, name: str = "sandbox") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.name = name
        self._server = uvicorn.Server(uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", access_log=False, lifespan="off",
            timeout_keep_alive=30, backlog=2048))
        self._thread = threading.Thread(target=self._server.run, name=f"{name}-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_all(*, host: str = "127.0.0.1", amazon_port: int = 0, sap_port: int = 0,
              netsuite_port: int = 0, spapi_port: int = 0) -> dict[str, ThreadedServer]:
    """Start the sandboxes with their default credentials (see ``sandbox/profile.py``)."""
    from primebridge.sandbox.amazon import create_app as amazon_app
    from primebridge.sandbox.netsuite import create_app as netsuite_app
    from primebridge.sandbox.sap import create_app as sap_app
    from primebridge.sandbox.spapi import create_app as spapi_app

    servers = {
        "amazon": ThreadedServer(amazon_app(), host, amazon_port, name="amazon"),
        "sap": ThreadedServer(sap_app(), host, sap_port, name="sap"),
        "netsuite": ThreadedServer(netsuite_app(), host, netsuite_port, name="netsuite"),
        "spapi": ThreadedServer(spapi_app(), host, spapi_port, name="spapi"),
    }
    started: dict[str, ThreadedServer] = {}
    try:
        for name, server in servers.items():
            started[name] = server.start()
    except Exception:
        for server in started.values():
            server.stop()
        raise
    return started
