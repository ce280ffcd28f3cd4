"""What every command shares: the global options, option types, the pipeline and runtime, errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from lakehouse.cli.render import _err, _styled

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (for scripts).")]


NoSparkOpt = Annotated[
    bool,
    typer.Option("--no-spark", help="Route everything through the Lambda engine (no Java/Spark needed)."),
]


@dataclass
class Globals:
    home: Path
    datasets: Path


def _globals(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    assert isinstance(obj, Globals)
    return obj


def _fail(message: str, code: int = 2) -> typer.Exit:
    _err().print(_styled(("error:", "red"), f" {message}"), highlight=False)
    return typer.Exit(code)


def _route_max_bytes(route: str, no_spark: bool) -> int | None:
    """`--route`: lambda (nothing is large), glue (everything is), auto (LAMBDA_ROUTE_MAX_BYTES if set)."""
    from lakehouse.local.environment import NO_SPARK_ROUTE_MAX_BYTES

    if route not in ("lambda", "glue", "auto"):
        raise _fail(f"--route must be lambda, glue or auto, not {route!r}")
    if route == "glue" and no_spark:
        raise _fail("--route glue needs local Spark; drop --no-spark")
    if route == "lambda" or no_spark:
        return NO_SPARK_ROUTE_MAX_BYTES
    if route == "glue":
        return 0  # Inspect sends objects larger than this to Glue: every non-empty object
    value = os.environ.get("LAMBDA_ROUTE_MAX_BYTES")
    if value is None:
        return None  # the template's LambdaRouteMaxBytes
    if not value.isdigit():
        raise _fail(f"LAMBDA_ROUTE_MAX_BYTES must be a number of bytes, not {value!r}")
    return int(value)


def _pipeline(
    ctx: typer.Context,
    *,
    no_spark: bool = False,
    route_max_bytes: int | None = None,
    route: str | None = None,
    batch_size: int | None = None,
    batch_bytes: int | None = None,
) -> Any:
    from lakehouse.local.executor import LocalOptions, LocalPipeline
    from lakehouse.local.project import ProjectError

    g = _globals(ctx)
    if route is not None or route_max_bytes is None:
        route_max_bytes = _route_max_bytes(route or "auto", no_spark)
    try:
        pipeline = LocalPipeline(
            LocalOptions(
                home=g.home,
                datasets_dir=g.datasets,
                # --route glue: Spark is required (a clear error now, not a failed run later).
                spark=False if no_spark else (True if route == "glue" else None),
                lambda_route_max_bytes=route_max_bytes,
                parameters=_batch_parameters(batch_size, batch_bytes),
            )
        )
    except ProjectError as exc:
        raise _fail(str(exc)) from exc
    _ = pipeline.rt.contracts  # bad contracts stop the command here, every problem listed
    return pipeline


def _batch_parameters(batch_size: int | None, batch_bytes: int | None) -> dict[str, str]:
    """Template parameter overrides for a drain's batch limits (`--batch-size 1`: one object per drain)."""
    out: dict[str, str] = {}
    for name, value in (("BatchMaxObjects", batch_size), ("BatchMaxBytes", batch_bytes)):
        if value is not None:
            if value < 1:
                raise _fail(f"--{'batch-size' if name == 'BatchMaxObjects' else 'batch-bytes'} must be >= 1")
            out[name] = str(value)
    return out


BatchSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        help="Most objects a drain commits in one transaction (default: the template's BatchMaxObjects, "
        "100); 1 keeps one object per drain, for debugging.",
    ),
]
BatchBytesOpt = Annotated[
    int | None,
    typer.Option("--batch-bytes", help="Most bytes a drain commits in one transaction (default 64 MiB)."),
]


def _runtime(ctx: typer.Context) -> Any:
    """The local runtime only (no template needed): for commands that read or maintain tables."""
    g = _globals(ctx)
    return _runtime_for_home(g.home, g.datasets)


def _runtime_for_home(home: Path, datasets: Path) -> Any:
    from lakehouse.settings import Settings
    from lakehouse.stages.runtime import Runtime

    settings = Settings.model_validate(
        {"LAKEHOUSE_BACKEND": "local", "LAKEHOUSE_HOME": str(home), "DATASETS_DIR": str(datasets)}
    )
    return Runtime.create(settings)


def _contract_or_exit(rt: Any, table: str) -> Any:
    from lakehouse.errors import ContractError

    try:
        return rt.contract(table)
    except ContractError as exc:
        raise _fail(str(exc)) from exc


@dataclass(frozen=True)
class _Target:
    """A table a verb works on: a dataset's table, or a derived (gold) model refreshed from `source`."""

    name: str
    uri: str
    contract: Any  # the dataset's contract; None for a derived model
    source: str  # the dataset whose lease guards the table (itself, or the model's source)


def _target_or_exit(rt: Any, name: str) -> _Target:
    from lakehouse.errors import ContractError

    try:
        return _Target(name, rt.table_uri(name), rt.contract(name), name)
    except ContractError as exc:
        for dataset in rt.contracts.names():
            if any(m.name == name for m in rt.contract(dataset).derived):
                return _Target(name, rt.derived_uri(name), None, dataset)
        raise _fail(str(exc)) from exc


def _records_for(pipeline: Any, run_ids: list[str]) -> list[dict[str, Any]]:
    ledger = pipeline.rt.adapters.ledger
    return [ledger.get(run_id) or {"run_id": run_id, "status": "UNKNOWN"} for run_id in run_ids]
