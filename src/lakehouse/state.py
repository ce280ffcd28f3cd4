"""The state data of the state machines, as pydantic models.

docs/ARCHITECTURE.md, "State data of IngestStateMachine (JSONPath)", is generated from them.

Every stage parses its input into these models and returns `model_dump(mode="json")`, so the JSON that
crosses a stage boundary (the Step Functions state, the Glue job's `commit.json`, the run ledger) has one
definition. The ASL reads paths inside them (`$.inspection.route`, `$.commit.status`, `$.checks.passed`);
tests/unit/test_state.py checks that every path the ASL names exists here, and that the state table in
docs/ARCHITECTURE.md is the one `state_table()` renders.

Pydantic only (no pyarrow, duckdb or deltalake): every Lambda function imports this module.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from lakehouse import commit_log, identifiers

# -- run statuses -------------------------------------------------------------------------------------

# The `status` of a run in the run ledger, in AWS and locally (RUN_STATUS_MEANING says when).
RunStatus = Literal[
    "PENDING",
    "STARTED",
    "RUNNING",
    "COMMITTED",
    "DUPLICATE",
    "CHECKED",
    "CHECKS_FAILED",
    "ROLLED_BACK",
    "QUARANTINED",
    "SUCCEEDED",
    "FAILED",
]
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
RUN_STATUS_MEANING: dict[RunStatus, str] = {
    "PENDING": "`on_object_created` recorded the object version in the pending set; a drain takes it",
    "STARTED": "`on_object_created` or `lakehouse rerun` started the execution",
    "RUNNING": "`AcquireTableLease`: the run holds its table's lease",
    "COMMITTED": "`CommitWithLambda` / `ReadGlueResult`: the rows are committed",
    "DUPLICATE": "the object version was already in the table; nothing was added",
    "CHECKED": "`EvaluateChecks` passed",
    "CHECKS_FAILED": "`EvaluateChecks` failed (the commit is rolled back next)",
    "ROLLED_BACK": "`Rollback` undid this run's commit",
    "QUARANTINED": "`Quarantine` copied the object aside with its reason",
    "SUCCEEDED": "the execution ended successfully (`RecordRunOutcome`, the final record)",
    "FAILED": "the execution failed, timed out or was stopped without a quarantine "
    "(`RecordRunOutcome`, the final record)",
}
# A run whose object is not in the table: its commit was rolled back, or it never committed.
RERUNNABLE: frozenset[RunStatus] = frozenset({"QUARANTINED", "FAILED", "ROLLED_BACK", "CHECKS_FAILED"})
# Final statuses that count as a failed run (exit codes, reports).
FAILED_STATUSES: frozenset[RunStatus] = frozenset({"FAILED", "QUARANTINED"})


def commit_status(commit_state: str | None) -> RunStatus:
    """The ledger status a commit result records."""
    return "DUPLICATE" if commit_state == "duplicate" else "COMMITTED"


class _Section(BaseModel):
    """A section a stage of this project writes: its own fields, typed. Keys it does not know are
    ignored when read, so a run in flight across a deploy that adds a field still parses."""

    model_config = ConfigDict(extra="ignore")


class _Open(BaseModel):
    """A section written by a service or an older/other engine: known fields typed, others kept."""

    model_config = ConfigDict(extra="allow")


# -- the run input ($) --------------------------------------------------------------------------------


class RunInput(_Open):
    """`$` as `on_object_created` (or `lakehouse rerun`) starts the execution."""

    run_id: str
    dataset: str
    bucket: str = ""
    key: str = ""
    version_id: str | None = None
    etag: str | None = ""
    size: int | None = 0
    sequencer: str | None = ""
    event_time: str | None = ""
    txn_version: int | None = Field(default=None, description="rerun generation (`lakehouse rerun`)")
    rerun_of: str | None = Field(default=None, description="the run a rerun repeats")

    @model_serializer(mode="wrap")
    def _omit_rerun_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A first run's input has no `txn_version`/`rerun_of` (its JSON is what StartExecution saw)."""
        out: dict[str, Any] = handler(self)
        for name in ("txn_version", "rerun_of"):
            if out.get(name) is None:
                out.pop(name, None)
        return out

    @field_validator("run_id", mode="before")
    @classmethod
    def _run_id(cls, value: object) -> str:
        return identifiers.run_id(value)  # InvalidInputError, not a ValidationError

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset(cls, value: object) -> str:
        return identifiers.name(value)

    @field_validator("txn_version", mode="before")
    @classmethod
    def _txn_version(cls, value: object) -> int | None:
        return None if value is None else commit_log.txn_version({"txn_version": value})


# -- the pending set and batches ----------------------------------------------------------------------


class BatchObject(_Section):
    """One object version of a drain's batch (and, with `status` etc., an item of the pending set)."""

    object_id: str = Field(description="the object's own run id: its ledger record, quarantine and rejects")
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = ""
    size: int | None = 0
    sequencer: str | None = ""
    event_time: str | None = ""
    txn_version: int | None = Field(default=None, description="after a rolled-back batch: the next one")

    @field_validator("object_id", mode="before")
    @classmethod
    def _object_id(cls, value: object) -> str:
        return identifiers.run_id(value)


class PendingObject(BatchObject):
    """An item of the pending set: an object version waiting for (or taken by) a drain."""

    dataset: str
    arrived_ns: int = 0
    status: Literal["pending", "claimed"] = "pending"
    drain_id: str | None = None
    group: str | None = Field(default=None, description="isolation group after a failed batch")
    note: str | None = None


class Batch(_Section):
    """`$.batch`: the object versions this run ingests in one Delta transaction."""

    objects: list[BatchObject] = Field(default_factory=list)
    count: int = 0
    bytes: int = 0
    group: str | None = None


class ManifestObject(_Section):
    """One object of a Glue manifest: where it is, its pinned version and its app transaction."""

    object_id: str
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    source_version: str = Field("", description="what the rows' `_source_version` says")
    ingested_at: str = Field(description="the rows' `_ingested_at` (ISO 8601, the object's event time)")
    app_id: str
    txn_version: int = commit_log.FIRST_TXN_VERSION

    @field_validator("object_id", mode="before")
    @classmethod
    def _object_id(cls, value: object) -> str:
        return identifiers.run_id(value)


class GlueManifest(_Section):
    """`s3://<lake>/runs/<run_id>/manifest.json`: what one Glue job run commits, in one transaction.

    The job gets only its URI (StartJobRun arguments are size-limited; a batch's keys are not)."""

    run_id: str
    dataset: str
    table_uri: str
    objects: list[ManifestObject] = Field(min_length=1)

    @field_validator("run_id", mode="before")
    @classmethod
    def _run_id(cls, value: object) -> str:
        return identifiers.run_id(value)

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset(cls, value: object) -> str:
        return identifiers.name(value)


# -- sections -----------------------------------------------------------------------------------------


class Lease(_Section):
    """`$.lease`: the table's single-writer lease."""

    table: str
    owner: str
    expires_at: float


class LeaseRelease(_Section):
    """`$.lease_release`."""

    table: str
    owner: str
    released: bool


class Inspection(_Section):
    """`$.inspection`: what the file is, its contract's checks and its route."""

    format: str
    compression: str | None = None
    size_bytes: int
    route: Literal["lambda", "glue"]
    table_uri: str
    app_id: str
    version_before: int
    has_checks: bool
    checks_query: str | None = None
    missing_references: dict[str, str] = Field(default_factory=dict, description="{check: dataset}")
    has_derived: bool
    derived_models: list[str] = Field(default_factory=list)
    app_ids: dict[str, str] = Field(default_factory=dict, description="{object_id: app id} of a batch")
    manifest_uri: str | None = Field(None, description="the Glue route: the batch's manifest")


class GlueRun(_Open):
    """`$.glue`: the `TransformWithGlue` job run."""

    job_run_id: str | None = None
    job_run_state: str | None = None


class ObjectCommit(_Section):
    """What a batch commit did with one of its objects."""

    object_id: str
    status: Literal["committed", "duplicate"]
    resumed: bool = False
    duplicate_of: str | None = None
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    rows_dropped: int = 0
    rejects_uri: str | None = None


class CommitResult(_Open):
    """`$.commit`: what the commit did (`runs/<run_id>/commit.json` of the Glue job has this shape too).

    The one list of these fields: the engines' `lakehouse.ingest_core.IngestResult` extends this model."""

    status: Literal["committed", "duplicate"]
    resumed: bool = False
    duplicate_of: str | None = None
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    rows_dropped: int = 0
    version_before: int = -1
    version_after: int = -1
    bytes_read: int = 0
    duration_ms: int = 0
    added_columns: list[str] = Field(default_factory=list)
    format: str | None = None
    rejects_uri: str | None = None
    objects: list[ObjectCommit] | None = Field(default=None, description="per object, in a batch")


class CatalogEntry(_Section):
    """`$.catalog`: the Glue Data Catalog entry of a table."""

    database: str
    table: str
    created: bool
    schema_changed: bool


class DerivedEntry(_Section):
    table: str
    created: bool
    schema_changed: bool | None = None
    missing: bool | None = None

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        return {k: v for k, v in out.items() if v is not None or k in ("table", "created")}


class DerivedCatalog(_Section):
    """`$.derived_catalog`: the derived (gold) tables' catalog entries."""

    database: str
    tables: list[DerivedEntry]


class AthenaQuery(_Open):
    """`$.athena`."""

    query_execution_id: str


class AthenaRows(_Open):
    """`$.check_rows`: the ResultSet of `athena:getQueryResults`."""

    Rows: list[dict[str, Any]] = Field(default_factory=list)
    ResultSetMetadata: dict[str, Any] = Field(default_factory=dict)


class CheckOutcome(_Section):
    name: str
    metric: float | None
    min: float | None
    max: float | None
    severity: str
    passed: bool
    note: str | None = Field(default=None, description="why there is no metric")

    @model_serializer(mode="wrap")
    def _omit_note(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if not out.get("note"):
            out.pop("note", None)
        return out


class ChecksOutcome(_Section):
    """`$.checks`: the contract's checks against Athena's metrics."""

    passed: bool
    results: list[CheckOutcome]
    failed: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class EmrRun(_Open):
    """`$.derived`: the `RefreshDerived` EMR Serverless job run."""

    application_id: str | None = None
    job_run_id: str | None = None


class ErrorInfo(_Open):
    """`$.error` (and `$.*_error`): what a `Catch` caught."""

    Error: str = "Unknown"
    Cause: Any = None

    @field_validator("Error", mode="before")
    @classmethod
    def _error_name(cls, value: object) -> str:
        return "Unknown" if value is None else str(value)


class RollbackOutcome(_Open):
    """`$.rollback`."""

    restored: bool
    reason: str | None = None
    version: int | None = None
    uri: str | None = None
    restored_to: int | None = None
    version_before: int | None = None
    version_after: int | None = None


class QuarantineOutcome(_Section):
    """`$.quarantine`: where the object and its reason went."""

    object_uri: str
    reason_uri: str
    error: str
    message: Any = None


class BatchOutcome(_Section):
    """`$.batch_outcome`: what became of the batch's objects."""

    action: Literal["finished", "split"]
    statuses: dict[str, str] = Field(default_factory=dict, description="{object_id: ledger status}")
    groups: list[list[str]] = Field(default_factory=list, description="object ids requeued together")


# -- the whole state ----------------------------------------------------------------------------------


def _written_by(states: str) -> Any:
    """A section of the state, absent until `states` wrote it (the "Written by" of the state table)."""
    return Field(default=None, description=states)


class IngestState(RunInput):
    """The state of IngestStateMachine: the run input and the section each state adds."""

    lease: Lease | None = _written_by("`AcquireTableLease`")
    object_id: str | None = _written_by("`ClaimBatch` (a batch of one object)")
    batch: Batch | None = _written_by("`ClaimBatch`")
    batch_outcome: BatchOutcome | None = _written_by("`FinishBatch` / `SplitBatch`")
    inspection: Inspection | None = _written_by("`Inspect`")
    glue: GlueRun | None = _written_by("`TransformWithGlue` (`glue:startJobRun.sync`)")
    commit: CommitResult | None = _written_by("`CommitWithLambda` / `ReadGlueResult`")
    catalog: CatalogEntry | None = _written_by("`RegisterTable`")
    athena: AthenaQuery | None = _written_by("`RunChecks` (`athena:startQueryExecution.sync`)")
    check_rows: AthenaRows | None = _written_by("`GetCheckResults` (`athena:getQueryResults`; the ResultSet)")
    checks: ChecksOutcome | None = _written_by("`EvaluateChecks` (`note`: why a check has no metric)")
    derived: EmrRun | None = _written_by("`RefreshDerived` (`emr-serverless:startJobRun.sync`)")
    derived_catalog: DerivedCatalog | None = _written_by(
        "`RegisterDerived` (`missing`: the refresh wrote no table)"
    )
    lease_release: LeaseRelease | None = _written_by("`ReleaseLease` / `ReleaseLeaseAfterFailure`")
    rollback: RollbackOutcome | None = _written_by("`Rollback`")
    quarantine: QuarantineOutcome | None = _written_by("`Quarantine`")
    error: ErrorInfo | None = _written_by("every `Catch`, `UnknownRoute`, `RecordChecksFailed`")
    release_error: ErrorInfo | None = _written_by("`ReleaseLease`'s `Catch`")
    split_error: ErrorInfo | None = _written_by("`SplitBatch`'s `Catch`")
    rollback_error: ErrorInfo | None = _written_by("`Rollback`'s `Catch`")
    quarantine_error: ErrorInfo | None = _written_by("`Quarantine`'s `Catch`")
    alert_error: ErrorInfo | None = _written_by("an SNS alert's `Catch`")


# -- MaintenanceStateMachine --------------------------------------------------------------------------


class PlannedTable(_Section):
    """One item of `$.tables` (PlanMaintenance)."""

    run_id: str
    dataset: str
    table_uri: str
    size_bytes: int
    files: int
    route: Literal["lambda", "emr"]


class MaintenancePlan(_Section):
    """PlanMaintenance's output (it replaces the input: `ResultPath: $`)."""

    tables: list[PlannedTable]


class TableChecksPlan(_Section):
    """`$.table_checks` (PlanTableChecks): the table-scoped checks of one table as one Athena query."""

    has_checks: bool
    checks_query: str | None = None
    checks: list[str] = Field(default_factory=list, description="the checks' names, in the query's order")
    missing_references: dict[str, str] = Field(default_factory=dict, description="{check: dataset}")


class MaintenanceItemResult(_Open):
    """What one Map iteration ends with (RecordSuccess / RecordFailure / RecordLeaseUnavailable /
    RecordChecksPassed / RecordChecksFailed)."""

    dataset: str
    status: Literal["succeeded", "failed"]
    error: ErrorInfo | None = None
    checks: ChecksOutcome | None = Field(default=None, description="the table-scoped checks' results")


class MaintenanceItemState(_Open):
    """The state inside `MaintainTables` (one table)."""

    run_id: str
    dataset: str
    route: Literal["lambda", "emr"]
    table_uri: str
    execution_name: str
    plan: PlannedTable
    lease: Lease | None = None
    result: dict[str, Any] | None = Field(default=None, description="MaintainWithLambda / MaintainWithEmr")
    catalog: CatalogEntry | None = None
    lease_release: LeaseRelease | None = None
    error: ErrorInfo | None = None
    release_error: ErrorInfo | None = None
    table_checks: TableChecksPlan | None = None
    athena: AthenaQuery | None = None
    check_rows: AthenaRows | None = None
    checks: ChecksOutcome | None = None


class MaintenanceState(_Open):
    """The top-level state of MaintenanceStateMachine, from PlanMaintenance to AnyTableFailed."""

    datasets: list[str] | None = Field(default=None, description="the input: which tables (default all)")
    tables: list[PlannedTable] = Field(default_factory=list)
    results: list[MaintenanceItemResult] = Field(default_factory=list)
    statuses: list[str] = Field(default_factory=list)
    any_failed: bool = False
    error: ErrorInfo | None = None
    alert_error: ErrorInfo | None = None


# -- the run ledger -----------------------------------------------------------------------------------


class RunRecord(_Open):
    """One run in the run ledger (DynamoDB in AWS, `<home>/state/runs` locally). Stages merge their
    parts in; the local executor adds the execution's path and timings when it ends."""

    run_id: str
    status: RunStatus
    dataset: str | None = None
    bucket: str | None = None
    key: str | None = None
    updated_at: str | None = None


# The terminal statuses of a Step Functions execution (DescribeExecution, the EventBridge event).
ExecutionStatus = Literal["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]
# The Fail state the ingest failure path (rollback, quarantine, alert, release) ends in.
INGEST_FAILED_ERROR = "IngestFailed"


class RunOutcome(_Section):
    """How an execution ended: the input of `RecordRunOutcome` (in AWS from the EventBridge "Step
    Functions Execution Status Change" event, locally from the finished execution)."""

    run_id: str
    execution_status: ExecutionStatus
    error: str | None = Field(default=None, description="the execution's error (its Fail state's)")
    cause: str | None = None
    commit_status: Literal["committed", "duplicate"] | None = Field(
        default=None, description="`$.commit.status` of the output, when it has one"
    )
    execution_arn: str | None = None

    @field_validator("run_id", mode="before")
    @classmethod
    def _run_id(cls, value: object) -> str:
        return identifiers.run_id(value)


def final_status(outcome: RunOutcome, recorded: RunStatus | None = None) -> RunStatus:
    """A run's final status from how its execution ended and the status its stages recorded last.

    A run that ended in `IngestFailed` was quarantined only when the `Quarantine` stage recorded it (the
    path after a good commit, `AlertAfterCommit`, ends there too, without a quarantine). The output may
    lack `$.commit` (EventBridge drops an output over 248 KB): then the commit stage's DUPLICATE stands.
    """
    if outcome.execution_status == "SUCCEEDED":
        duplicate = outcome.commit_status == "duplicate" or (
            outcome.commit_status is None and recorded == "DUPLICATE"
        )
        return "DUPLICATE" if duplicate else "SUCCEEDED"
    if outcome.execution_status == "FAILED" and outcome.error == INGEST_FAILED_ERROR:
        return "QUARANTINED" if recorded == "QUARANTINED" else "FAILED"
    return "FAILED"


# -- docs/ARCHITECTURE.md -----------------------------------------------------------------------------

_INPUT_WRITTEN_BY = "`on_object_created` (`lakehouse rerun` adds `txn_version`, `rerun_of`)"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _shape_of(annotation: Any) -> str:
    """A field's type as the state table shows it: `{a, b}`, `[{...}]`, `"x"|"y"`, or nothing."""
    if get_origin(annotation) is Literal:
        return "|".join(f'"{v}"' for v in get_args(annotation))
    if get_origin(annotation) is dict and get_args(annotation)[1] is str:
        return "{str: str}"
    models = _models_in(annotation)
    if not models:
        return ""
    inner = shape(models[0])
    return f"[{inner}]" if get_origin(annotation) is list else inner


def shape(model: type[BaseModel], fields: list[str] | None = None) -> str:
    """`{field, field: "a"|"b", nested: {…}, …}` (a trailing `…`: other keys are kept)."""
    parts = []
    for name, info in model.model_fields.items():
        if fields is not None and name not in fields:
            continue
        sub = _shape_of(info.annotation)
        parts.append(f"{name}: {sub}" if sub else name)
    if model.model_config.get("extra") == "allow" and fields is None:
        parts.append("…")
    return "{" + ", ".join(parts) + "}"


def state_table() -> str:
    """The "State data of IngestStateMachine" table of docs/ARCHITECTURE.md, from IngestState."""
    sections = {n for n in IngestState.model_fields if n not in RunInput.model_fields}
    rows = [("`$` (input)", _INPUT_WRITTEN_BY, shape(RunInput, list(RunInput.model_fields)))]
    for name in IngestState.model_fields:
        if name in sections:
            info = IngestState.model_fields[name]
            rows.append((f"`$.{name}`", str(info.description or ""), _shape_of(info.annotation)))
    lines = ["| Path | Written by | Shape |", "| --- | --- | --- |"]
    for path, by, form in rows:
        lines.append(f"| {path} | {by} | `{form}` |".replace('|"', '\\|"').replace('"|', '"\\|'))
    return "\n".join(lines) + "\n"


def status_table() -> str:
    """The run statuses of docs/ARCHITECTURE.md."""
    lines = ["| Status | Meaning |", "| --- | --- |"]
    lines += [f"| `{status}` | {RUN_STATUS_MEANING[status]} |" for status in RUN_STATUSES]
    return "\n".join(lines) + "\n"
