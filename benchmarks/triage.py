"""The worklist order in two simulated reading rooms, and the cost of ranking it.

One command: ``.venv/bin/python benchmarks/triage.py``. It prints three tables:

1. QuCAD (FDA; Thompson et al., Queueing Systems 2024): one radiologist, traffic intensity
   0.8, 10 min exponential reading, prevalence 10%, AI sensitivity and specificity 0.9, in
   steady state. FIFO, pacs-ai with ageing off (a pure two-class non-preemptive priority) and
   pacs-ai as configured, each group's mean wait beside the M/M/1 formulas (Cobham/Kleinrock).
2. A chest X-ray work day after Baltruschat et al. (Eur Radiol 2021), FIFO against pacs-ai
   (and pacs-ai with ageing off): pneumothorax turnaround against their 80.1 -> 35.6 min, and
   the longest wait of every other study against FIFO's.
3. ``rank()`` over ``--rank-studies`` unread studies (default 5,000): p50/p95 milliseconds,
   the worklist API's budget being a p95 under 50 ms.

Intervals are Student-t 95% over replications; replication ``k`` of every order sees the same
studies (common random numbers). Policies come from ``Settings()``, so ``PACS_AI_TRIAGE_*``
variables change what is measured.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from datetime import timedelta

import numpy as np
from rich.console import Console
from rich.table import Table

from pacs_ai.config import Settings
from pacs_ai.triage.score import TriagePolicy, rank
from pacs_ai.triage.simulate import (
    AI_NEGATIVE,
    AI_POSITIVE,
    ALL,
    BALTRUSCHAT_PNEUMOTHORAX_MINUTES,
    ICH,
    OTHER,
    PNEUMOTHORAX,
    Estimate,
    baltruschat_room,
    draw_cohort,
    qucad_expected,
    qucad_room,
    relative_change,
    replicate,
)

console = Console()
Results = dict[str, dict[str, Estimate]]
COLUMNS = (
    ("mean_wait", "mean wait"),
    ("p95_wait", "p95 wait"),
    ("max_wait", "max wait"),
    ("mean_turnaround", "mean TAT"),
    ("p95_turnaround", "p95 TAT"),
    ("max_turnaround", "max TAT"),
)


def cell(value: Estimate) -> str:
    """Mean and its 95% interval, minutes."""
    return f"{value.mean:.1f} [{value.low:.1f}, {value.high:.1f}]"


def table(
    title: str,
    groups: list[tuple[str, str]],
    results: dict[str, Results],
    theory: dict[tuple[str, str], float] | None = None,
) -> Table:
    """One row per (group, order): the six wait metrics, and the theory's mean wait if any."""
    headers = ["group", "order", *(label for _, label in COLUMNS)]
    if theory is not None:
        headers.append("theory mean wait")
    out = Table(*headers, title=title)
    for group, shown in groups:
        for order, result in results.items():
            metrics = result[group]
            row = [shown, order, *(cell(metrics[key]) for key, _ in COLUMNS)]
            if theory is not None:
                expected = theory.get((group, order))
                row.append("" if expected is None else f"{expected:.1f}")
            out.add_row(*row)
        out.add_section()
    return out


def qucad(policy: TriagePolicy, replications: int, minutes: float) -> None:
    """The QuCAD setting in steady state against the M/M/1 formulas."""
    room = qucad_room(minutes=minutes, warmup_minutes=2_000)
    expected = qucad_expected()
    started = time.perf_counter()
    results = {
        "FIFO": replicate(room, None, replications=replications, seed=1),
        "pacs-ai, ageing off": replicate(
            room, policy.without_ageing(), replications=replications, seed=1
        ),
        "pacs-ai": replicate(room, policy, replications=replications, seed=1),
    }
    label = ICH[0]
    theory = {
        **{(group, "FIFO"): expected.fifo for group in (label, OTHER, ALL)},
        (label, "pacs-ai, ageing off"): expected.diseased_prioritized,
        (OTHER, "pacs-ai, ageing off"): expected.healthy_prioritized,
        (AI_POSITIVE, "pacs-ai, ageing off"): expected.ai_positive,
        (AI_NEGATIVE, "pacs-ai, ageing off"): expected.ai_negative,
        (ALL, "pacs-ai, ageing off"): expected.fifo,
    }
    groups = [
        (label, f"{label} (diseased)"),
        (OTHER, "no ICH"),
        (AI_POSITIVE, AI_POSITIVE),
        (AI_NEGATIVE, AI_NEGATIVE),
        (ALL, ALL),
    ]
    studies = results["FIFO"][ALL]
    console.print(
        table(
            f"QuCAD: M/M/1, rho 0.8, 10 min reading, prevalence 10%, Se = Sp = 0.9 "
            f"({replications} x {minutes:,.0f} min, {time.perf_counter() - started:.0f} s)",
            groups,
            results,
            theory,
        )
    )
    covered = results["pacs-ai, ageing off"][label]["mean_wait"].covers(
        expected.diseased_prioritized
    )
    console.print(
        f"Diseased mean wait: FIFO {cell(results['FIFO'][label]['mean_wait'])} "
        f"(theory {expected.fifo:.1f}), pacs-ai ageing off "
        f"{cell(results['pacs-ai, ageing off'][label]['mean_wait'])} (theory "
        f"{expected.diseased_prioritized:.2f}; interval covers it: {covered}); "
        f"{studies['mean_wait'].replications} replications.\n"
    )


def baltruschat(policy: TriagePolicy, replications: int) -> None:
    """The chest X-ray day: pneumothorax turnaround and the others' longest wait."""
    room = baltruschat_room()
    started = time.perf_counter()
    results = {
        "FIFO": replicate(room, None, replications=replications, seed=1),
        "pacs-ai, ageing off": replicate(
            room, policy.without_ageing(), replications=replications, seed=1
        ),
        "pacs-ai": replicate(room, policy, replications=replications, seed=1),
    }
    label = PNEUMOTHORAX[0]
    groups = [
        (label, label),
        (OTHER, "not pneumothorax"),
        (AI_POSITIVE, AI_POSITIVE),
        (ALL, ALL),
    ]
    console.print(
        table(
            f"Chest X-ray day after Baltruschat et al.: 3 radiologists, ~535 studies, "
            f"pneumothorax 2%, Se 0.85, Sp 0.9 ({replications} days, "
            f"{time.perf_counter() - started:.0f} s)",
            groups,
            results,
        )
    )
    fifo_tat, published_ai = BALTRUSCHAT_PNEUMOTHORAX_MINUTES
    published = relative_change(fifo_tat, published_ai)
    claims = Table(
        "order",
        "pneumothorax mean TAT",
        "change",
        f"Baltruschat: {fifo_tat} -> {published_ai}",
        "others' max wait",
        "change vs FIFO",
        "within 10%",
        title="Claims",
    )
    before = results["FIFO"]
    for order in ("pacs-ai, ageing off", "pacs-ai"):
        after = results[order]
        gain = relative_change(
            before[label]["mean_turnaround"].mean, after[label]["mean_turnaround"].mean
        )
        spread = relative_change(before[OTHER]["max_wait"].mean, after[OTHER]["max_wait"].mean)
        claims.add_row(
            order,
            f"{before[label]['mean_turnaround'].mean:.1f} -> "
            f"{after[label]['mean_turnaround'].mean:.1f}",
            f"{gain:+.1%}",
            f"{published:+.1%}: {'matched' if gain <= published else 'not matched'}",
            f"{before[OTHER]['max_wait'].mean:.0f} -> {after[OTHER]['max_wait'].mean:.0f}",
            f"{spread:+.1%}",
            "yes" if spread <= 0.10 else "no",
        )
    console.print(claims)
    console.print()


def rank_latency(policy: TriagePolicy, studies: int, runs: int) -> None:
    """``rank()`` over ``studies`` unread studies, ten hours of a busy room's arrivals."""
    room = replace(baltruschat_room(), arrivals=((600.0, studies * 6 / 60.0 * 1.05),))
    facts = draw_cohort(room, 7).facts[:studies]
    now = facts[-1].arrived_at + timedelta(minutes=1)
    rank(facts, now=now, policy=policy)  # warm-up
    timings = []
    for _ in range(runs):
        tick = time.perf_counter()
        ranked = rank(facts, now=now, policy=policy)
        timings.append((time.perf_counter() - tick) * 1000)
    overdue = sum(b.overdue for b in ranked)
    out = Table("unread studies", "runs", "p50 ms", "p95 ms", "overdue", title="rank() latency")
    out.add_row(
        f"{len(facts):,}",
        str(runs),
        f"{np.percentile(timings, 50):.1f}",
        f"{np.percentile(timings, 95):.1f}",
        f"{overdue:,}",
    )
    console.print(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qucad-replications", type=int, default=20)
    parser.add_argument("--qucad-minutes", type=float, default=500_000.0)
    parser.add_argument("--cxr-replications", type=int, default=100)
    parser.add_argument("--rank-studies", type=int, default=5_000)
    parser.add_argument("--rank-runs", type=int, default=50)
    args = parser.parse_args()
    policy = TriagePolicy.from_settings(Settings())
    slas = ", ".join(f"{k} {v:g}" for k, v in policy.sla_minutes.items())
    console.print(
        f"Policy (Settings): weights AI {policy.weight_ai:g}, clinical "
        f"{policy.weight_clinical:g}, waiting {policy.weight_waiting:g}; overdue "
        f"{policy.overdue_per_hour:g}/h; SLA minutes: {slas}\n"
    )
    qucad(policy, args.qucad_replications, args.qucad_minutes)
    baltruschat(policy, args.cxr_replications)
    rank_latency(policy, args.rank_studies, args.rank_runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
