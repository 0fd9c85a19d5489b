"""Helpers every benchmark script shares (imported as a sibling module: run them as scripts)."""

from __future__ import annotations

import socket
import statistics


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def print_latency_table(rows: list[tuple[str, list[float]]]) -> None:
    """A markdown table of p50 and p95 per case, in milliseconds."""
    print(f"| {'case':<34} | {'p50 (ms)':>8} | {'p95 (ms)':>8} |")
    print(f"|{'-' * 36}|{'-' * 10}|{'-' * 10}|")
    for name, values in rows:
        p50, p95 = statistics.median(values), percentile(values, 0.95)
        print(f"| {name:<34} | {p50:8.1f} | {p95:8.1f} |")
