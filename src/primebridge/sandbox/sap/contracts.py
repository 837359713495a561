"""Where the SAP sandbox finds the public EDMX contract files it serves as ``$metadata``.

The EDMX files are SAP's published contracts; they are not shipped in this repository. By default
they are looked for in ``shared/contracts/sap`` next to the checkout (``../shared/contracts/sap``
from the repository root); ``PRIMEBRIDGE_SAP_CONTRACTS`` points elsewhere. Without them the
sandbox works the same, only ``$metadata`` answers 404.
"""

from __future__ import annotations

import os
from pathlib import Path

# src/primebridge/sandbox/sap/contracts.py → the repository root is four folders up.
_CHECKOUT_DEFAULT = Path(__file__).resolve().parents[4].parent / "shared" / "contracts" / "sap"


def contracts_dir() -> Path:
    configured = os.environ.get("PRIMEBRIDGE_SAP_CONTRACTS")
    return Path(configured) if configured else _CHECKOUT_DEFAULT


def edmx(name: str) -> Path:
    """``name`` without extension, e.g. ``API_SALES_ORDER_SRV``."""
    return contracts_dir() / f"{name}.edmx"
