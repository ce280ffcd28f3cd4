"""Throughput model: files/hour/table in AWS, from each state's latency in one drain.

One drain per table at a time: it takes a batch from the pending set, commits it in one Delta transaction
(CommitWithLambda: DuckDB + delta-rs), registers the table, runs the Athena checks scoped to the batch's
rows and, at most once per drain and no more often than an interval, refreshes the derived tables. Then
the next drain starts if objects are pending. So, for a table that always has objects waiting:

    drains/hour          = 3600 / (latency of one drain)
    files/hour/table     = batch size x drains/hour

A drain's latency is the sum of the states it enters (statemachine/ingest.asl.json, success path) plus a
Step Functions transition per state. Each figure below says where it comes from: a source (URL), a
measurement of this project (the command), or an assumption (labelled so; replace it with the dashboard's
p50 once deployed). Every printed figure of docs/COST.md "Throughput" and docs/BENCHMARKS.md comes from
this script.

Run: .venv/bin/python bench/throughput_model.py [--file-mb 3] [--engine-mb-s 100] [--cold]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

AWS_DOCS = "https://docs.aws.amazon.com"
SOURCES = {
    "athena-timeline": f"{AWS_DOCS}/athena/latest/APIReference/API_QueryRuntimeStatisticsTimeline.html",
    "athena-queue": "https://bit.kevinslin.com/p/athena-provisioned-capacity"
    " (queue time: mostly under 200 ms, p99 past a minute)",
    "emr-preinit": f"{AWS_DOCS}/emr/latest/EMR-Serverless-UserGuide/pre-init-capacity.html"
    " (pre-initialized workers: jobs start immediately)",
    "emr-behavior": f"{AWS_DOCS}/emr/latest/EMR-Serverless-UserGuide/app-behavior.html"
    " (auto-start on submission, auto-stop after 15 min idle)",
    "emr-workers": "https://awsi.click/en/glossary/emrsl/ (worker start-up typically 15-30 s)",
    "sfn-sync": f"{AWS_DOCS}/step-functions/latest/dg/integrate-optimized.html (.sync: Standard only)",
    "lambda-lifecycle": "https://aws.amazon.com/blogs/compute/operating-lambda-performance-optimization-part-1/"
    " (cold start: environment set-up + init code)",
    "lambda-cpu": f"{AWS_DOCS}/lambda/latest/dg/configuration-memory.html (CPU in proportion to memory)",
    "measured-engine": "bench/ingest.py: the engine ingests 766 MB of CSV in 6.67 s on 2 cores",
    "measured-import": "bench/lambda_cold_start.py: the commit handler's init (docs/BENCHMARKS.md)",
    "cost": "docs/COST.md assumptions A2 and A6",
}

# Step Functions' own time per state entered (scheduling, history write). Not published by AWS.
TRANSITION_S = 0.05
# S3 GET of one small object (first byte + transfer of a few MB) from Lambda in the same region: an
# assumption (S3 publishes no latency figure; the dashboard's CommitWithLambda duration replaces it).
GET_S = 0.1


@dataclass(frozen=True)
class State:
    name: str
    seconds: float
    source: str  # a SOURCES key, or "assumption"


def drain_states(batch: int, file_mb: float, engine_mb_s: float, derived: str) -> list[State]:
    """The states one successful drain enters, with their latency in AWS (warm Lambdas)."""
    batch_mb = batch * file_mb
    states = [
        State("AcquireTableLease", 0.10, "cost"),
        State("ClaimBatch", 0.10 + 0.005 * batch, "assumption"),  # DynamoDB query + a write per object
        State("HasObjects", 0.0, "assumption"),
        State("Inspect", 0.30 + 0.02 * batch, "cost"),  # a HEAD and a header read per object
        State("Route", 0.0, "assumption"),
        # Delta log read + commit (S3 round trips), each object's GET, then the engine's own work.
        State("CommitWithLambda", 1.0 + GET_S * batch + batch_mb / engine_mb_s, "measured-engine"),
        State("IsDuplicate", 0.0, "assumption"),
        State("RegisterTable", 0.50, "cost"),
        State("HasChecks", 0.0, "assumption"),
        # Queue (median ~0.2 s) + planning/execution of a query scoped to the batch's rows + the .sync
        # integration noticing completion: 2.5 s in all is an assumption; see athena-timeline to measure.
        State("RunChecks", 2.5, "athena-queue"),
        State("GetCheckResults", 0.20, "assumption"),
        State("EvaluateChecks", 0.10, "cost"),
        State("ChecksPassed", 0.0, "assumption"),
        State("HasDerived", 0.0, "assumption"),
    ]
    if derived == "cold":  # EMR Serverless application started on demand: workers, Spark, the job
        states += [State("RefreshDerived", 180.0, "cost"), State("RegisterDerived", 0.50, "cost")]
    elif derived == "preinit":  # pre-initialized driver and executors: the Spark job itself
        states += [State("RefreshDerived", 60.0, "emr-preinit"), State("RegisterDerived", 0.50, "cost")]
    states += [
        State("Publish", 0.10, "assumption"),
        State("FinishBatch", 0.10 + 0.005 * batch, "assumption"),
        State("ReleaseLease", 0.10, "cost"),
        State("Done", 0.0, "assumption"),
    ]
    return states


def drain_seconds(states: list[State], cold_start_s: float = 0.0) -> float:
    lambdas = sum(1 for s in states if s.name in LAMBDA_STATES)
    return sum(s.seconds for s in states) + TRANSITION_S * len(states) + cold_start_s * lambdas


LAMBDA_STATES = {
    "AcquireTableLease", "ClaimBatch", "Inspect", "CommitWithLambda", "RegisterTable", "EvaluateChecks",
    "RegisterDerived", "FinishBatch", "ReleaseLease",
}  # fmt: skip


def files_per_hour(batch: int, drain_s: float, refresh_s: float = 0.0, interval_s: float = 0.0) -> float:
    """Files/hour/table with the derived refresh at most once per drain and once per `interval_s`.

    With interval 0 every drain refreshes (its latency includes the refresh). Otherwise refreshes/hour =
    3600 / max(interval, drain) and the hour's remaining time goes to drains without a refresh.
    """
    if refresh_s and not interval_s:
        return batch * 3600 / (drain_s + refresh_s)
    refreshes = 3600 / max(interval_s, drain_s + refresh_s) if refresh_s else 0.0
    drains = (3600 - refreshes * refresh_s) / drain_s
    return batch * drains


@dataclass(frozen=True)
class Workload:
    """docs/COST.md's workload (its assumptions W1-W4)."""

    files_per_day: int = 10_000
    datasets: int = 20
    busy_hours: float = 10.0  # the day's files land within these hours
    busiest_factor: float = 5.0  # the busiest dataset gets this many times the average dataset's files
    derived_datasets: int = 2  # datasets with derived models ...
    derived_files_per_day: int = 100  # ... each receiving this many files a day
    backfill_files: int = 2_000  # a one-off drop of this many files on one table


def steady_batch(rate_per_hour: float, batch_cap: int, seconds_for: Callable[[int], float]) -> float:
    """Objects per drain when files arrive at `rate_per_hour`: what landed during the previous drain,
    at least 1 (a drain started by the arrival itself), at most the batch cap."""
    batch = 1.0
    for _ in range(50):
        batch = min(batch_cap, max(1.0, rate_per_hour / 3600 * seconds_for(round(batch))))
    return batch


def report_workload(args: argparse.Namespace, cap: int, interval: float) -> None:
    w = Workload()
    seconds = {
        kind: (lambda b, k=kind: drain_seconds(drain_states(b, args.file_mb, args.engine_mb_s, k)))
        for kind in ("none", "cold")
    }
    average = w.files_per_day / w.datasets / w.busy_hours
    busiest = average * w.busiest_factor
    derived_rate = w.derived_files_per_day / w.busy_hours
    print(
        f"docs/COST.md workload: {w.files_per_day:,} files/day on {w.datasets} datasets"
        f" over {w.busy_hours:g} h"
    )
    for label, rate, kind in (
        ("average dataset", average, "none"),
        ("busiest dataset", busiest, "none"),
        ("dataset with derived models", derived_rate, "cold"),
    ):
        batch = steady_batch(rate, cap, seconds["none"])
        base = seconds["none"](round(batch))
        refresh = seconds["cold"](round(batch)) - base if kind == "cold" else 0.0
        capacity = files_per_hour(cap, seconds["none"](cap), refresh, interval)
        drains = rate / batch
        refreshes = min(drains, 3600 / max(interval, base + refresh)) if refresh else 0.0
        print(
            f"  {label:28s} {rate:6.1f} files/h: {batch:4.1f} objects/drain, {drains:5.1f} drains/h,"
            f" {refreshes:4.1f} refreshes/h; capacity {capacity:,.0f} files/h ({capacity / rate:,.0f}x)"
        )
    drains_day = w.files_per_day  # at these rates every drain finds one object (see above)
    refreshes_day = w.derived_datasets * min(derived_rate, 3600 / interval) * w.busy_hours
    print(f"  drains/day: {drains_day:,} (one object each at these rates);"
          f" derived refreshes/day: {refreshes_day:.0f}"
          f" (was {w.derived_datasets * w.derived_files_per_day} with a refresh per file)")  # fmt: skip
    per_file = files_per_hour(1, seconds["none"](1), seconds["cold"](1) - seconds["none"](1))
    print(
        f"  a refresh in every drain of one file (the per-file design) carries {per_file:.0f}"
        " files/h per table"
    )
    backfill = files_per_hour(
        cap, seconds["none"](cap), seconds["cold"](cap) - seconds["none"](cap), interval
    )
    minutes = w.backfill_files / backfill * 60
    print(f"  a backfill of {w.backfill_files:,} files on one table drains in {minutes:.0f} min"
          f" ({cap} objects per drain, derived every {interval / 60:g} min)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--file-mb", type=float, default=3.0, help="average landed file size (docs/COST.md A1)"
    )
    parser.add_argument("--engine-mb-s", type=float, default=100.0, help="engine throughput at 3008 MB")
    parser.add_argument("--batch-max-mb", type=float, default=64.0, help="BatchMaxBytes in MiB")
    parser.add_argument("--interval-min", type=float, default=15.0, help="derived refresh interval")
    parser.add_argument("--cold-start-s", type=float, default=2.0, help="per Lambda, with --cold")
    parser.add_argument("--cold", action="store_true", help="every Lambda task starts cold")
    args = parser.parse_args()
    cold = args.cold_start_s if args.cold else 0.0
    cap = max(1, int(args.batch_max_mb / args.file_mb))
    print(f"files of {args.file_mb:g} MB; BatchMaxBytes {args.batch_max_mb:g} MiB holds {cap} of them;"
          f" engine {args.engine_mb_s:g} MB/s; {'cold' if cold else 'warm'} Lambdas")  # fmt: skip
    interval = args.interval_min * 60
    header = ("batch", "drain s", "no derived", "derived/drain", "derived/drain preinit",
              f"derived/{args.interval_min:g}min")  # fmt: skip
    print("files/hour/table (one table, objects always pending):")
    print("  " + " ".join(f"{h:>22s}" if i else f"{h:>6s}" for i, h in enumerate(header)))
    for batch in (1, 10, 50, 100):
        effective = min(batch, cap)
        base = drain_seconds(drain_states(effective, args.file_mb, args.engine_mb_s, "none"), cold)
        with_cold = drain_seconds(drain_states(effective, args.file_mb, args.engine_mb_s, "cold"), cold)
        with_pre = drain_seconds(drain_states(effective, args.file_mb, args.engine_mb_s, "preinit"), cold)
        row = [
            files_per_hour(effective, base),
            files_per_hour(effective, with_cold),
            files_per_hour(effective, with_pre),
            files_per_hour(effective, base, with_cold - base, interval),
        ]
        label = f"{batch}" if effective == batch else f"{batch}->{effective}"
        print(f"  {label:>6s} {base:22.1f} " + " ".join(f"{v:22,.0f}" for v in row))
    print("one drain of 10 files, state by state (s):")
    for state in drain_states(min(10, cap), args.file_mb, args.engine_mb_s, "none"):
        if state.seconds:
            print(f"  {state.name:18s} {state.seconds:6.2f}  [{state.source}]")
    print(f"  + {TRANSITION_S:g} s Step Functions time per state entered [assumption]")
    report_workload(args, cap, interval)
    print("sources:")
    for key, text in SOURCES.items():
        print(f"  [{key}] {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
