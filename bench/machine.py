"""Describe the machine a benchmark ran on, so its figures can be compared with others.

Run on its own (``.venv/bin/python bench/machine.py``) or imported by the benchmarks, which print
it first: throughput figures mean little without the cores and versions they were measured on.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from pathlib import Path

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))} (kernel {platform.release()})"
    except OSError:
        pass
    return platform.platform()


def _postgres_version(url: str) -> str:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"
    except Exception as exc:
        return f"not reachable ({type(exc).__name__})"


def describe(pg_url: str | None = None) -> dict[str, str]:
    url = pg_url or os.environ.get("PRIMEBRIDGE_BENCH_PG_URL", DEFAULT_PG_URL)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": f"{os.cpu_count()} logical ({usable} usable by this process)",
        "memory": _memory_gib(),
        "os": _os_name(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _postgres_version(url),
    }


def render(pg_url: str | None = None) -> str:
    info = describe(pg_url)
    width = max(len(key) for key in info)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in info.items())


if __name__ == "__main__":
    print(render())
