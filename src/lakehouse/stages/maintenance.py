"""MaintenanceStateMachine stages: which tables need work, the Lambda-sized maintenance itself, and the
table-scoped checks (run here, on the maintenance schedule, not after every commit)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aws_lambda_powertools import Logger

from lakehouse import tables
from lakehouse.duckdb_engine.delta import open_table
from lakehouse.errors import InvalidInputError
from lakehouse.sql.checks import (
    athena_table,
    checks_in_scope,
    compile_checks,
    evaluate,
    metrics_from_athena,
    missing_references,
)
from lakehouse.stages.runtime import Runtime, parse_model
from lakehouse.state import (
    AthenaRows,
    CheckOutcome,
    ChecksOutcome,
    MaintenancePlan,
    PlannedTable,
    TableChecksPlan,
)

logger = Logger(child=True)

# Tables larger than this are compacted on EMR Serverless rather than in a 15-minute Lambda.
LAMBDA_MAINTENANCE_MAX_BYTES = 2 * 1024**3


def plan_maintenance(rt: Runtime, event: dict[str, Any] | None = None) -> dict[str, Any]:
    """`PlanMaintenance`: every dataset's table that exists, with its size and route."""
    wanted = (event or {}).get("datasets") or rt.contracts.names()
    planned: list[PlannedTable] = []
    for dataset in wanted:
        uri = rt.table_uri(dataset)
        table = open_table(uri, rt.storage_options)
        if table is None:
            continue
        sizes = table.get_add_actions(flatten=True).column("size_bytes").to_pylist()
        size = sum(int(s or 0) for s in sizes)
        planned.append(
            PlannedTable(
                run_id=f"maintain-{dataset}",
                dataset=dataset,
                table_uri=uri,
                size_bytes=size,
                files=len(sizes),
                route="lambda" if size <= LAMBDA_MAINTENANCE_MAX_BYTES else "emr",
            )
        )
    return MaintenancePlan(tables=planned).model_dump(mode="json")


def maintain_table(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`MaintainWithLambda`: compact, checkpoint and vacuum one table."""
    dataset = str(event.get("dataset") or "")
    if not dataset:
        raise InvalidInputError("maintain_table: input lacks 'dataset'")
    retention = int(event.get("retention_hours", 168))
    return tables.maintain(
        rt.table_uri(dataset), retention_hours=retention, storage_options=rt.storage_options
    )


# -- table-scoped checks on the maintenance schedule ---------------------------------------------------
# A table check reads the whole table, so it does not run after every commit (batch checks do, see
# stages/ingest.py) but here, after the table's maintenance. Nothing can be rolled back at this point: a
# failure is logged, recorded in the maintenance result with its metric and thresholds, and fails the
# execution, which alerts (AlertMaintenanceFailed) as any table's failed maintenance does.


def maintenance_task(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """The MaintainTable function's tasks: `action` maintain (default), plan_checks, evaluate_checks."""
    action = str(event.get("action") or "maintain")
    if action == "maintain":
        return maintain_table(rt, event)
    if action == "plan_checks":
        return plan_table_checks(rt, event)
    if action == "evaluate_checks":
        return evaluate_table_checks(rt, event)
    raise InvalidInputError(
        f"maintenance task: unknown action {action!r} (maintain, plan_checks, evaluate_checks)"
    )


def plan_table_checks(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`PlanTableChecks`: the dataset's table-scoped checks as one Athena query (none: has_checks false)."""
    dataset = str(event.get("dataset") or "")
    if not dataset:
        raise InvalidInputError("plan_table_checks: input lacks 'dataset'")
    contract = rt.contract(dataset)
    checks = checks_in_scope(contract, "table")
    references = {c.reference.dataset for c in checks if c.reference is not None}
    available = {dataset} | {d for d in references if open_table(rt.table_uri(d), rt.storage_options)}
    query = compile_checks(
        contract, athena_table(rt.settings.glue_database), available=available, scope="table"
    )
    return TableChecksPlan(
        has_checks=query is not None,
        checks_query=query.athena() if query is not None else None,
        checks=[c.name for c in checks],
        missing_references=missing_references(contract, available, "table"),
    ).model_dump(mode="json")


def evaluate_table_checks(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """`EvaluateTableChecks`: Athena's metrics (`$.check_rows`) against the thresholds."""
    dataset = str(event.get("dataset") or "")
    if not dataset:
        raise InvalidInputError("evaluate_table_checks: input lacks 'dataset'")
    plan = parse_model(TableChecksPlan, event.get("table_checks"), "state $.table_checks")
    rows = event.get("check_rows") or {}
    result_set = parse_model(AthenaRows, rows.get("ResultSet", rows), "state $.check_rows")
    metrics = metrics_from_athena(result_set.model_dump(mode="json"))
    return table_checks_outcome(rt, dataset, plan, metrics)


def table_checks_outcome(
    rt: Runtime, dataset: str, plan: TableChecksPlan, metrics: Sequence[float | None]
) -> dict[str, Any]:
    """The checks `plan` named against `metrics`; a failure is logged with its metric and thresholds."""
    declared = {c.name: c for c in checks_in_scope(rt.contract(dataset), "table")}
    gone = [name for name in plan.checks if name not in declared]
    if gone:
        raise InvalidInputError(
            f"dataset {dataset!r}: the contract no longer declares the table check(s) {', '.join(gone)} "
            "it was planned with; the next maintenance run measures the current checks"
        )
    results = evaluate([declared[n] for n in plan.checks], metrics, plan.missing_references)
    outcome = ChecksOutcome(
        passed=all(r.passed or r.severity == "warn" for r in results),
        results=[CheckOutcome.model_validate(r.as_dict()) for r in results],
        failed=[r.name for r in results if not r.passed and r.severity == "fail"],
        warnings=[r.name for r in results if not r.passed and r.severity == "warn"],
    )
    report = {"dataset": dataset, "failed": outcome.failed, "warnings": outcome.warnings}
    detail = [r.as_dict() for r in results if not r.passed]
    if outcome.failed:
        logger.error("table checks failed", extra={**report, "results": detail})
    elif outcome.warnings:
        logger.warning("table checks warned", extra={**report, "results": detail})
    return outcome.model_dump(mode="json")


def run_table_checks(
    rt: Runtime, dataset: str, query: Callable[[str], Sequence[float | None]]
) -> dict[str, Any] | None:
    """Plan, run (`query`: Athena SQL -> the metric row) and evaluate the table-scoped checks of
    `dataset`: what the maintenance state machine's check states do, in one call (`lakehouse maintain`).
    None when the dataset declares no table-scoped checks."""
    plan = TableChecksPlan.model_validate(plan_table_checks(rt, {"dataset": dataset}))
    if not plan.has_checks or plan.checks_query is None:
        return None
    return table_checks_outcome(rt, dataset, plan, query(plan.checks_query))
