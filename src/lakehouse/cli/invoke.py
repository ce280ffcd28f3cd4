"""`lakehouse invoke`: one Lambda handler in-process, like `sam local invoke` (no Docker)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from lakehouse.cli.base import NoSparkOpt, _fail, _globals, _pipeline, _runtime
from lakehouse.cli.render import _err, _print_json, _styled


def invoke(
    ctx: typer.Context,
    function: Annotated[str, typer.Argument(help="The template logical id, e.g. InspectObjectFunction.")],
    event: Annotated[
        Path, typer.Option("--event", "-e", help="The event JSON file ('-' for stdin).", allow_dash=True)
    ],
    env_vars: Annotated[
        Path | None, typer.Option("--env-vars", "-n", help="SAM env-vars JSON file.", exists=True)
    ] = None,
    drain: Annotated[
        bool, typer.Option("--drain/--no-drain", help="Run the pipeline runs the handler started.")
    ] = True,
    local_uris: Annotated[
        bool,
        typer.Option(
            "--local-uris/--keep-uris", help="Point s3://<local bucket>/ URIs in the event at the local home."
        ),
    ] = True,
    seed: Annotated[
        Path | None,
        typer.Option(
            "--seed",
            exists=True,
            dir_okay=False,
            help="Put this file at every object the event names that is not in the home yet.",
        ),
    ] = None,
    allow_missing: Annotated[
        bool,
        typer.Option(
            "--allow-missing",
            help="Invoke OnObjectCreatedFunction even if the event's objects do not exist "
            "(their runs will find nothing and quarantine them).",
        ),
    ] = False,
    metrics: Annotated[
        bool, typer.Option("--metrics", help="Also print the handler's EMF metrics and Powertools warnings.")
    ] = False,
    no_spark: NoSparkOpt = False,
) -> None:
    """Call one Lambda handler in-process, like `sam local invoke` (no Docker).

    The handler's return value is the only thing on stdout; its logs go to stderr."""
    from lakehouse.local.environment import LocalEnvironment
    from lakehouse.local.paths import LocalPaths
    from lakehouse.local.project import Project, ProjectError

    g = _globals(ctx)
    try:
        project = Project.load()
        spec = project.function(function)
    except ProjectError as exc:
        raise _fail(str(exc)) from exc
    payload = _read_event(event)
    overrides = _read_env_vars(env_vars)
    if local_uris:
        # Sample events carry the S3 URIs a deployed stack produces; the local backend's are paths.
        payload = LocalPaths(g.home).localise(payload)
    _seed_event_objects(ctx, function, payload, seed, allow_missing)
    env = LocalEnvironment(project, g.home, g.datasets).invoke_env(function, overrides, metrics=metrics)
    _call_handler(spec, payload, env, metrics)
    from lakehouse.local.starter import LocalQueue

    if drain and LocalQueue(g.home).pending():
        records = _pipeline(ctx, no_spark=no_spark).drain()
        for record in records:
            _err().print(f"run {record.run_id}: {record.status}", highlight=False)


def _read_event(event: Path) -> Any:
    try:
        text = sys.stdin.read() if str(event) == "-" else event.read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read the event {event}: {exc}") from exc


def _read_env_vars(env_vars: Path | None) -> dict[str, Any]:
    """SAM's env-vars file: "Parameters" applies to every function, "<LogicalId>" to that one."""
    if env_vars is None:
        return {}
    try:
        value = json.loads(env_vars.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise _fail(f"{env_vars}: not JSON: {exc}") from exc
    return value if isinstance(value, dict) else {}


def _call_handler(spec: Any, payload: Any, env: dict[str, str], metrics: bool) -> None:
    """Run the handler; print its response (or its error, exit 1) on stdout and a REPORT line on stderr."""
    from lakehouse.local.project import environment, handler_of
    from lakehouse.local.services import lambda_context

    function = spec.logical_id
    context = lambda_context(function, spec.timeout_s)
    context.memory_limit_in_mb = spec.memory_mb
    start = time.monotonic()
    try:
        # Handler logs and metrics go to stderr, as `sam local invoke` shows them; stdout is the response.
        with environment(env), contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            if not metrics:  # "No application metrics to publish", once per flush
                warnings.simplefilter("ignore", UserWarning)
            result = handler_of(spec)(payload, context)
    except Exception as exc:
        _print_json(
            {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[1:],
            }
        )
        _err().print(_styled((f"{function} raised {type(exc).__name__}", "red")), highlight=False)
        raise typer.Exit(1) from None
    _err().print(
        f"REPORT RequestId: {context.aws_request_id} Duration: {(time.monotonic() - start) * 1000:.2f} ms",
        highlight=False,
    )
    _print_json(result)


def _event_objects(function: str, payload: Any) -> list[tuple[str, str, str | None]]:
    """(bucket, key, version id) of the objects an event names: OnObjectCreated events, or a run's state."""
    from lakehouse.errors import InvalidInputError
    from lakehouse.events import is_sqs_event, iter_sqs_bodies, parse_message

    if not isinstance(payload, dict):
        return []
    if function == "OnObjectCreatedFunction":
        try:
            messages = [body for _, body in iter_sqs_bodies(payload)] if is_sqs_event(payload) else [payload]
            return [(o.bucket, o.key, o.version_id) for m in messages for o in parse_message(m)]
        except InvalidInputError:
            return []  # the handler reports a malformed event itself
    state = payload.get("run", payload)
    if isinstance(state, dict) and isinstance(state.get("bucket"), str) and isinstance(state.get("key"), str):
        version = state.get("version_id")
        return [(state["bucket"], state["key"], version if isinstance(version, str) else None)]
    return []


def _seed_event_objects(
    ctx: typer.Context, function: str, payload: Any, seed: Path | None, allow_missing: bool
) -> None:
    """`--seed`: put the file at each object the event names that is missing. Without it, refuse to start
    runs for objects that do not exist (they would be quarantined and clutter the home)."""
    objects = _runtime(ctx).adapters.objects
    missing = [(b, k, v) for b, k, v in _event_objects(function, payload) if not objects.exists(b, k)]
    if not missing:
        return
    if seed is not None:
        for bucket, key, version_id in missing:
            objects.put_file(bucket, key, seed)
            if version_id:
                # The event pins its reads to this version id: the seeded bytes become that version.
                objects.snapshot(bucket, key, version_id=version_id)
            _err().print(f"seeded {objects.uri(bucket, key)} from {seed}", highlight=False)
        return
    if function != "OnObjectCreatedFunction" or allow_missing:
        return
    names = ", ".join(f"s3://{b}/{k}" for b, k, _ in missing)
    raise _fail(
        f"the event names objects that are not in {_globals(ctx).home}: {names}. Each would start a run that "
        "finds no object and quarantines it. Pass --seed FILE to put FILE there first (e.g. a CSV of the "
        "dataset), or --allow-missing to start those runs anyway."
    )
