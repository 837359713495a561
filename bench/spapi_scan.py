"""Benchmark: a full SP-API inventory scan against the rate limit, client bucket vs. sandbox bucket.

    .venv/bin/python bench/spapi_scan.py [--pages 200] [--rates 2,20] [--burst 2] [--page-size 50]

For each rate a fresh SP-API sandbox (enforcing ``rate``/``burst``) serves ``pages × page-size``
generated SKUs and ``SpApiInventory.scan()`` reads them all. The lower bound set by the usage plan
is ``(pages − burst) ÷ rate``: the first ``burst`` calls are free, each further one waits for a
token. Printed: wall time, bound, ratio (targets: ≤ 1.02 at 2 req/s, ≤ 1.05 at 20 req/s), 429s
the sandbox answered, and the SKUs read. The sandbox runs in this process on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import render

from primebridge.config import SpApiConfig
from primebridge.connectors.spapi import build_inventory_source
from primebridge.sandbox.server import ThreadedServer
from primebridge.sandbox.spapi import DEFAULT_REFRESH_TOKEN, DEFAULT_SELLER, create_app


def scan_once(rate: float, burst: int, pages: int, page_size: int) -> dict[str, float]:
    app = create_app(catalogue_size=pages * page_size, page_size=page_size, rate=rate, burst=burst)
    with ThreadedServer(app, name="spapi") as server:
        cfg = SpApiConfig(endpoint=server.url, lwa_url=f"{server.url}/auth/o2/token",
                          client_id="sandbox-lwa-client", client_secret="sandbox-lwa-secret",
                          refresh_token=DEFAULT_REFRESH_TOKEN, seller_id=DEFAULT_SELLER,
                          rate_per_second=rate, burst=burst)
        source = build_inventory_source(cfg)
        source.summaries(["warm-up"])  # LWA token and connection, then let the bucket fill again
        time.sleep(burst / rate + 0.1)
        skus = seen_pages = 0
        started = time.perf_counter()
        for page in source.scan():
            skus += len(page)
            seen_pages += 1
        wall = time.perf_counter() - started
        counters = httpx.get(f"{server.url}/_sandbox/stats").json()["counters"]
    bound = (seen_pages - burst) / rate
    return {"rate": rate, "pages": seen_pages, "skus": skus, "wall": wall, "bound": bound,
            "ratio": wall / bound, "throttled": counters.get("throttled", 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--rates", default="2,20")
    parser.add_argument("--burst", type=int, default=2)
    parser.add_argument("--page-size", type=int, default=50)
    args = parser.parse_args()
    print(render())
    print()
    print(f"{'rate/s':>7} {'burst':>5} {'pages':>6} {'SKUs':>7} {'wall s':>8} {'bound s':>8} {'ratio':>6} {'429s':>5}")
    for rate in (float(r) for r in args.rates.split(",")):
        row = scan_once(rate, args.burst, args.pages, args.page_size)
        print(f"{row['rate']:>7g} {args.burst:>5} {row['pages']:>6} {row['skus']:>7} {row['wall']:>8.3f} "
              f"{row['bound']:>8.3f} {row['ratio']:>6.3f} {row['throttled']:>5}", flush=True)


if __name__ == "__main__":
    main()
