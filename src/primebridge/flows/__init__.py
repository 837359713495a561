"""One module per flow; orchestration only, written against the ports in ``primebridge.ports``."""
