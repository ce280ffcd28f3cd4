"""MaintenanceStateMachine stages: which tables need work, and the Lambda-sized maintenance itself."""

from __future__ import annotations

from typing import Any

from lakehouse import tables
from lakehouse.duckdb_engine.delta import open_table
from lakehouse.errors import InvalidInputError
from lakehouse.stages.runtime import Runtime
from lakehouse.state import MaintenancePlan, PlannedTable

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
