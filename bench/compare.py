"""Two versions of the service side by side: alternating rounds of the ingest workload
(`bench/ingest.py`, without its reference servers) and of escalation at a steady rate
(`bench/escalation.py`), each on a fresh service, the baseline started from a git worktree
of the revision named and the other from this checkout; the same client, receivers and
machine for both.

`python bench/compare.py --baseline REV [--rounds 3] [--escalations 3000]` prints each
figure's median per version and their ratio (this checkout over the baseline), and writes
`bench/results/compare-<date>-<baseline>-<this>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import escalation
import ingest

from harness import ROOT, machine

RESULTS = Path(__file__).resolve().parent / "results"
INGEST = [
    f"{phase}_{figure}"
    for phase in ("new", "duplicate", "resolve")
    for figure in ("alerts_per_s", "latency_ms_p50", "latency_ms_p99", "service_cpu_ms_per_request")
] + ["peak_rss_mb"]
ESCALATION = ["level2_lateness_ms_p50", "level2_lateness_ms_p99", "level2_lateness_ms_max"]


def worktree(rev: str, where: Path) -> str:
    """Check `rev` out at `where`; return its short commit."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(where), rev],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


async def one_round(root: Path, escalations: int) -> dict[str, Any]:
    """Run both workloads once against the service of the checkout at `root`."""
    os.environ["BENCH_SERVICE_ROOT"] = str(root)
    figures, _ = await ingest.one_run(references=False)
    if escalations:
        figures.update(await escalation.run(escalations, 100.0))
    return figures


async def compare(baseline: Path, rounds: int, escalations: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "this": []}
    for n in range(rounds):
        # Alternate which goes first, so neither always runs on a warmer machine.
        order = [("baseline", baseline), ("this", ROOT)]
        for side, root in order if n % 2 == 0 else reversed(order):
            print(f"== round {n + 1}: {side}", flush=True)
            runs[side].append(await one_round(root, escalations))
    keys = INGEST + (ESCALATION if escalations else [])
    table = {}
    for key in keys:
        base = statistics.median(run[key] for run in runs["baseline"])
        this = statistics.median(run[key] for run in runs["this"])
        table[key] = {
            "baseline": base,
            "this": this,
            "ratio": round(this / base, 3) if base else None,
            "baseline_runs": [run[key] for run in runs["baseline"]],
            "this_runs": [run[key] for run in runs["this"]],
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="a git revision")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--escalations",
        type=int,
        default=3000,
        help="incidents at 100/s per escalation run; 0 to skip",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp) / "baseline"
        rev = worktree(args.baseline, where)
        try:
            table = asyncio.run(compare(where, args.rounds, args.escalations))
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(where)],
                cwd=ROOT,
                check=False,
                capture_output=True,
            )
    this = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(f"{'figure':40} {'baseline ' + rev:>16} {'this ' + this:>16} {'ratio':>7}")
    for key, row in table.items():
        print(f"{key:40} {row['baseline']:>16} {row['this']:>16} {row['ratio']!s:>7}")
    RESULTS.mkdir(exist_ok=True)
    date = datetime.now(UTC).date().isoformat()
    path = RESULTS / f"compare-{date}-{rev}-{this}.json"
    path.write_text(
        json.dumps(
            {
                "date": date,
                "machine": machine(),
                "baseline": rev,
                "this": this,
                "rounds": args.rounds,
                "escalations": args.escalations,
                "figures": table,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"written: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
