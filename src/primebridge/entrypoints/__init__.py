"""How primebridge is started: the ``primebridge`` CLI and the one ASGI app."""
