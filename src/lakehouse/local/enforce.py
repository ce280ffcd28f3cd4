"""Local IAM enforcement: every call a local task makes is checked against its role in template.yaml.

Who is calling: `LAKEHOUSE_IAM_ROLE` (a role's logical id, e.g. `CommitObjectFunctionRole`), set by the
local executor for the duration of each Lambda handler, Glue/EMR job and Step Functions service
integration (`as_role`). With no role set (the CLI's own reads, tests that use adapters directly) nothing
is checked. `LAKEHOUSE_IAM=off` turns enforcement off altogether.

What is checked:
- the local adapters, through the wrappers `build_adapters` puts around them (`wrap`): object store
  (S3 actions on `arn:aws:s3:::bucket/key`, `s3:ListBucket` on the bucket with `s3:prefix`, and the KMS
  key of a KMS-encrypted bucket), leases and run ledger (DynamoDB item actions on the table ARN), catalog
  (Glue actions on the catalog, database and table ARNs), notifier (`sns:Publish`, `events:PutEvents`);
- storage reached by URI (delta-rs, DuckDB, Spark): the checkpoints of `lakehouse.access`;
- what a Step Functions role needs for each service integration (`lakehouse.local.executor`).

A denied call raises `lakehouse.errors.AccessDeniedError` with AWS's message. Every allowed call can be
recorded (`LAKEHOUSE_IAM_RECORD=<file>`) for the unused-grants report (scripts/iam_unused_grants.py).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from lakehouse import layout
from lakehouse.access import ROLE_ENV, SWITCH_ENV, active_role
from lakehouse.errors import AccessDeniedError
from lakehouse.local.iam import ACCOUNT_ID, PARTITION, REGION, PolicyModel, Principal, Request, evaluate
from lakehouse.ports import KeyPage

RECORD_ENV = "LAKEHOUSE_IAM_RECORD"
SESSION_ENV = "LAKEHOUSE_IAM_SESSION"


@lru_cache(maxsize=4)
def _model(root: str | None) -> PolicyModel:
    return PolicyModel.load(Path(root) if root else None)


_PROJECT_ROOT: list[str] = []


def use_project(root: Path) -> None:
    """The project whose template the checks use when LAKEHOUSE_PROJECT_ROOT is not set (the executor's)."""
    _PROJECT_ROOT[:] = [str(root)]


def _root() -> str | None:
    return os.environ.get("LAKEHOUSE_PROJECT_ROOT") or (_PROJECT_ROOT[0] if _PROJECT_ROOT else None)


def model() -> PolicyModel:
    """The roles of the project's template.yaml (parsed once per process)."""
    return _model(_root())


def role_env(role: str | None, session: str | None = None) -> dict[str, str]:
    """The environment that makes a task act as `role`, for a task run in another process: the role, the
    session name, and the switches (on/off, recording) as they are set here."""
    values = {ROLE_ENV: role or "", SESSION_ENV: session or role or ""}
    for name in (SWITCH_ENV, RECORD_ENV):
        if os.environ.get(name):
            values[name] = os.environ[name]
    return values


@contextlib.contextmanager
def as_role(role: str | None, session: str | None = None) -> Iterator[None]:
    """Act as `role` inside the block (None: no checks). Thread-unsafe by design, like the handler
    environment the local executor swaps (one task at a time)."""
    from lakehouse.local.project import environment

    values = {ROLE_ENV: role or "", SESSION_ENV: session or role or ""}
    with environment(values):
        yield


# -- recording ------------------------------------------------------------------------------------

# (role, statement, Action entry) -> one example request; kept small whatever the number of calls.
_RECORDED: dict[tuple[str, str, str], str] = {}
_RECORD_LOCK = threading.Lock()


def _record(role: str, action: str, resource: str, statements: Sequence[Any]) -> None:
    if not os.environ.get(RECORD_ENV):
        return
    with _RECORD_LOCK:
        for st in statements:
            for pattern in st.action_patterns(action):
                _RECORDED.setdefault((role, st.label, pattern), action + " " + resource)


@atexit.register
def flush_records() -> None:
    """Append what was allowed to `$LAKEHOUSE_IAM_RECORD` (one JSON line per role/statement/action)."""
    path = os.environ.get(RECORD_ENV)
    with _RECORD_LOCK:
        rows = sorted((*key, example) for key, example in _RECORDED.items())
        _RECORDED.clear()
    if not path or not rows:
        return
    lines = "".join(
        json.dumps({"role": r, "statement": s, "action": a, "example": e}) + "\n" for r, s, a, e in rows
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(lines)


# -- decisions ------------------------------------------------------------------------------------

_ERROR_CODES = {"s3": "AccessDenied", "sns": "AuthorizationError"}


def denial_message(
    role: str, action: str, resource: str, *, explicit: bool, session: str | None = None
) -> str:
    """AWS's AccessDenied message for an assumed role."""
    who = f"arn:{PARTITION}:sts::{ACCOUNT_ID}:assumed-role/{role}/{session or role}"
    shown = f'"{resource}"' if action.startswith("s3:") else resource
    why = (
        "with an explicit deny in an identity-based policy"
        if explicit
        else f"because no identity-based policy allows the {action} action"
    )
    return f"User: {who} is not authorized to perform: {action} on resource: {shown} {why}"


@lru_cache(maxsize=8192)
def _candidates(root: str | None, role: str, action: str) -> tuple[Any, ...]:
    """The statements of a role whose Action/NotAction covers `action` (cached: evaluation is then a
    resource and condition check over a few statements)."""
    return tuple(st for st in _model(root).role(role).statements if st.matches_action(action))


def authorize(role: str, action: str, resource: str, context: Mapping[str, Any] | None = None) -> None:
    """Raise AccessDeniedError unless `role`'s policies allow `action` on `resource`."""
    statements = _candidates(_root(), role, action)
    decision = evaluate(statements, Request(action, resource, context or {}))
    if not decision.allowed:
        service = action.split(":", 1)[0]
        message = denial_message(
            role, action, resource, explicit=decision.explicit_deny, session=os.environ.get(SESSION_ENV)
        )
        raise AccessDeniedError(message, _ERROR_CODES.get(service, "AccessDeniedException"), action, resource)
    _record(role, action, resource, decision.allowed_by)


def kms_allows(principal: Principal, action: str, key_logical_id: str, context: Mapping[str, Any]) -> bool:
    """The key policy allows the principal itself, or the account (which delegates to IAM) and IAM
    allows it too. Service principals are not IAM principals of the account: only the key policy counts."""
    m = model()
    key_arn = m.key_arn(key_logical_id)
    request = Request(action, key_arn, context)
    key_policy = m.key_policies[key_logical_id]
    if principal.arn is None:
        return evaluate(key_policy, request, principal).allowed
    direct = evaluate(key_policy, request, principal)
    if direct.explicit_deny:
        return False
    role = m.role_by_arn(principal.arn)
    via_iam = evaluate(key_policy, request, Principal(arn=principal.account_root)).allowed
    return direct.allowed or (via_iam and evaluate(role.statements, request).allowed)


@lru_cache(maxsize=1024)
def _kms_decision(
    root: str | None, role: str, action: str, key_logical_id: str
) -> tuple[bool, str, tuple[Any, ...]]:
    """(allowed, key ARN, the role's statements that allow it): a role's use of a key has no context."""
    m = _model(root)
    arn = m.key_arn(key_logical_id)
    allowed = kms_allows(Principal(arn=m.role(role).arn), action, key_logical_id, {})
    return allowed, arn, evaluate(m.role(role).statements, Request(action, arn)).allowed_by


def authorize_kms(role: str, action: str, key_logical_id: str) -> None:
    allowed, resource, allowed_by = _kms_decision(_root(), role, action, key_logical_id)
    if not allowed:
        message = denial_message(role, action, resource, explicit=False, session=os.environ.get(SESSION_ENV))
        raise AccessDeniedError(message, "AccessDeniedException", action, resource)
    _record(role, action, resource, allowed_by)


# -- S3 -------------------------------------------------------------------------------------------


def s3_location(uri: str) -> tuple[str, str] | None:
    """(bucket, key) of an `s3://` URI or of a local path under `<LAKEHOUSE_HOME>/buckets/`; None for
    a path outside the local object store (a temp file)."""
    where = layout.parse_s3_uri(uri) or layout.local_location(
        Path(os.environ.get("LAKEHOUSE_HOME") or ".lakehouse"), uri
    )
    return None if where is None else (where.bucket, where.key)


def check_s3(role: str, action: str, bucket: str, key: str) -> None:
    if action in ("s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"):
        authorize(role, action, f"arn:{PARTITION}:s3:::{bucket}", {"s3:prefix": key})
        return
    authorize(role, action, f"arn:{PARTITION}:s3:::{bucket}/{key}")
    key_id = bucket_keys().get(bucket)
    if key_id and action in ("s3:GetObject", "s3:GetObjectVersion"):
        authorize_kms(role, "kms:Decrypt", key_id)
    elif key_id and action == "s3:PutObject":
        authorize_kms(role, "kms:GenerateDataKey", key_id)


@lru_cache(maxsize=4)
def _bucket_keys(root: str | None) -> dict[str, str]:
    m = _model(root)
    out: dict[str, str] = {}
    for logical_id, res in m.resolver.resources.items():
        if not isinstance(res, Mapping) or res.get("Type") != "AWS::S3::Bucket":
            continue
        rules = (
            (m.resolver.props(logical_id).get("BucketEncryption") or {}).get(
                "ServerSideEncryptionConfiguration"
            )
        ) or []
        for rule in rules:
            default = rule.get("ServerSideEncryptionByDefault") or {}
            key = default.get("KMSMasterKeyID")
            if default.get("SSEAlgorithm") == "aws:kms" and isinstance(key, Mapping) and "Fn::GetAtt" in key:
                target = key["Fn::GetAtt"]
                out[m.resolver.name(logical_id)] = str(target[0] if isinstance(target, list) else target)
    return out


def bucket_keys() -> dict[str, str]:
    """Local bucket name -> logical id of the KMS key its default encryption uses."""
    return _bucket_keys(_root())


def require_uri(role: str, uri: str, actions: Sequence[str]) -> None:
    """`lakehouse.access.require` once a role is active."""
    location = s3_location(uri)
    if location is None:
        return
    bucket, key = location
    for action in actions:
        check_s3(role, action, bucket, key)


# -- the checking wrappers around the local adapters ------------------------------------------------


class _Checked:
    """Forwards every attribute to the wrapped adapter; the subclasses check the known calls first.

    Unknown methods and keyword arguments (e.g. a `version_id` pin) pass through unchanged, so the
    wrapper keeps up with the adapter; tests/unit/test_iam_enforcement.py fails when a public method of
    a local adapter has no mapping here.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# ObjectStore method -> S3 actions on the object (a version pin needs s3:GetObjectVersion).
OBJECT_ACTIONS: dict[str, tuple[str, ...]] = {
    "head": ("s3:GetObject",),
    "metadata": ("s3:GetObject",),
    "exists": ("s3:GetObject",),
    "download": ("s3:GetObject",),
    "read_bytes": ("s3:GetObject",),
    "put_bytes": ("s3:PutObject",),
    "put_file": ("s3:PutObject",),
    "delete": ("s3:DeleteObject",),
    # A path holding a pinned version's bytes (local Spark reads paths): a read of that version.
    "pinned_path": ("s3:GetObject",),
    "version_path": ("s3:GetObjectVersion",),
    # The watcher giving a dropped file its version: the upload that created it, in S3 terms.
    "snapshot": ("s3:PutObject",),
}
UNCHECKED_OBJECT_METHODS = frozenset(
    {"uri", "storage_options", "copy", "list", "list_page"}
)  # copy/list: below


class EnforcingObjectStore(_Checked):
    def _check(self, actions: Sequence[str], bucket: str, key: str, kwargs: Mapping[str, Any]) -> None:
        role = active_role()
        if role is None:
            return
        pinned = bool(kwargs.get("version_id"))
        for action in actions:
            check_s3(
                role, "s3:GetObjectVersion" if pinned and action == "s3:GetObject" else action, bucket, key
            )
        if "s3:GetObject" in actions and not self._inner.exists(bucket, key):
            # S3 answers a read of a missing key with 404 only to a caller allowed s3:ListBucket on the
            # bucket; anyone else gets 403 AccessDenied (S3 docs: GetObject/HeadObject permissions).
            check_s3(role, "s3:ListBucket", bucket, key)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        actions = OBJECT_ACTIONS.get(name)
        if actions is None or not callable(method):
            return method

        def checked(bucket: str, key: str, *args: Any, **kwargs: Any) -> Any:
            self._check(actions, bucket, key, kwargs)
            return method(bucket, key, *args, **kwargs)

        return checked

    def copy(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, *args: Any, **kwargs: Any
    ) -> None:
        self._check(("s3:GetObject",), src_bucket, src_key, kwargs)
        self._check(("s3:PutObject",), dst_bucket, dst_key, {})
        self._inner.copy(src_bucket, src_key, dst_bucket, dst_key, *args, **kwargs)

    def list(self, bucket: str, prefix: str = "", *args: Any, **kwargs: Any) -> Iterator[str]:
        role = active_role()
        if role is not None:
            check_s3(role, "s3:ListBucket", bucket, prefix)
        result: Iterator[str] = self._inner.list(bucket, prefix, *args, **kwargs)
        return result

    def list_page(self, bucket: str, prefix: str, start_after: str, max_keys: int) -> KeyPage:
        role = active_role()
        if role is not None:
            check_s3(role, "s3:ListBucket", bucket, prefix)
        page: KeyPage = self._inner.list_page(bucket, prefix, start_after, max_keys)
        return page


def _dynamodb_arn(table: str) -> str:
    return f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT_ID}:table/{table}"


class EnforcingLeaseStore(_Checked):
    """Leases are conditional PutItem / DeleteItem and GetItem on the lease table."""

    ACTIONS = {"acquire": "dynamodb:PutItem", "release": "dynamodb:DeleteItem", "get": "dynamodb:GetItem"}

    def __init__(self, inner: Any, table: str) -> None:
        super().__init__(inner)
        self._arn = _dynamodb_arn(table)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        action = self.ACTIONS.get(name)
        if action is None:
            return method

        def checked(*args: Any, **kwargs: Any) -> Any:
            role = active_role()
            if role is not None:
                authorize(role, action, self._arn)
            return method(*args, **kwargs)

        return checked


class EnforcingRunLedger(EnforcingLeaseStore):
    ACTIONS = {"put": "dynamodb:PutItem", "get": "dynamodb:GetItem", "list": "dynamodb:Scan"}


class EnforcingPendingSet(EnforcingLeaseStore):
    ACTIONS = {
        "add": "dynamodb:PutItem",
        "items": "dynamodb:Query",
        "claim": "dynamodb:UpdateItem",
        "requeue": "dynamodb:UpdateItem",
        "remove": "dynamodb:DeleteItem",
    }
    # Queries on a local secondary index are authorized on the index's ARN, not the table's.
    INDEXES = {"oldest": "pending_by_arrival", "claimed": "claimed_by_drain"}

    def __getattr__(self, name: str) -> Any:
        index = self.INDEXES.get(name)
        if index is None:
            return super().__getattr__(name)
        method = getattr(self._inner, name)

        def checked(*args: Any, **kwargs: Any) -> Any:
            role = active_role()
            if role is not None:
                authorize(role, "dynamodb:Query", f"{self._arn}/index/{index}")
            return method(*args, **kwargs)

        return checked


def glue_arns(database: str, table: str | None) -> list[str]:
    """What a Glue table call is authorized on: the catalog, the database and the table."""
    base = f"arn:{PARTITION}:glue:{REGION}:{ACCOUNT_ID}"
    arns = [f"{base}:catalog", f"{base}:database/{database}"]
    if table is not None:
        arns.append(f"{base}:table/{database}/{table}")
    return arns


class EnforcingCatalog(_Checked):
    def _check(self, action: str, database: str, table: str | None) -> None:
        role = active_role()
        if role is not None:
            for arn in glue_arns(database, table):
                authorize(role, action, arn)

    def get_table(self, database: str, table: str, *args: Any, **kwargs: Any) -> Any:
        self._check("glue:GetTable", database, table)
        return self._inner.get_table(database, table, *args, **kwargs)

    def list_tables(self, database: str, *args: Any, **kwargs: Any) -> Any:
        self._check("glue:GetTables", database, "*")
        return self._inner.list_tables(database, *args, **kwargs)

    def upsert_delta_table(
        self,
        database: str,
        table: str,
        location: str,
        columns: Any,
        partition_keys: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """GetTable, then CreateTable (new entry) or UpdateTable (changed entry), as the Glue adapter."""
        from lakehouse.adapters import columns_changed, delta_table_input

        if active_role() is not None:
            self._check("glue:GetTable", database, table)
            old = self._inner.get_table(database, table)
            if old is None:
                self._check("glue:CreateTable", database, table)
            else:
                new = delta_table_input(table, location, columns, partition_keys)
                if (
                    columns_changed(old, new)
                    or old.get("Parameters") != new["Parameters"]
                    or (old.get("StorageDescriptor", {}).get("Location") != location)
                ):
                    self._check("glue:UpdateTable", database, table)
        return self._inner.upsert_delta_table(
            database, table, location, columns, partition_keys, *args, **kwargs
        )


class EnforcingNotifier(_Checked):
    def __init__(self, inner: Any, topic_arn: str | None, bus: str) -> None:
        super().__init__(inner)
        self._topic = topic_arn
        self._bus = (
            bus if bus.startswith("arn:") else f"arn:{PARTITION}:events:{REGION}:{ACCOUNT_ID}:event-bus/{bus}"
        )

    def alert(self, subject: str, message: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        role = active_role()
        if role is not None:
            topic = self._topic or _template_topic()
            authorize(role, "sns:Publish", topic)
            # The topic is KMS-encrypted: the publisher needs the key too.
            key = _topic_key(topic)
            if key:
                authorize_kms(role, "kms:GenerateDataKey", key)
                authorize_kms(role, "kms:Decrypt", key)
        self._inner.alert(subject, message, *args, **kwargs)

    def publish(self, detail_type: str, detail: Mapping[str, Any], *args: Any, **kwargs: Any) -> None:
        role = active_role()
        if role is not None:
            authorize(role, "events:PutEvents", self._bus)
        self._inner.publish(detail_type, detail, *args, **kwargs)


def _template_topic() -> str:
    m = model()
    topics = [
        k
        for k, r in m.resolver.resources.items()
        if isinstance(r, Mapping) and r.get("Type") == "AWS::SNS::Topic"
    ]
    return m.resolver.arn(topics[0]) if topics else f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT_ID}:alerts"


def _topic_key(topic_arn: str) -> str | None:
    m = model()
    for logical_id, res in m.resolver.resources.items():
        if (
            isinstance(res, Mapping)
            and res.get("Type") == "AWS::SNS::Topic"
            and m.resolver.arn(logical_id) == topic_arn
        ):
            key = m.resolver.props(logical_id).get("KmsMasterKeyId")
            if isinstance(key, Mapping) and "Ref" in key:
                return str(key["Ref"])
    return None


def wrap(adapters: Any, settings: Any) -> Any:
    """The local adapters, each behind its checking wrapper (`LAKEHOUSE_IAM=off`: unwrapped)."""
    from lakehouse.access import SWITCH_ENV
    from lakehouse.adapters.factory import Adapters

    if os.environ.get(SWITCH_ENV, "on").lower() in ("off", "0", "false", "no"):
        return adapters
    return Adapters(
        objects=EnforcingObjectStore(adapters.objects),
        leases=EnforcingLeaseStore(adapters.leases, settings.lease_table),
        catalog=EnforcingCatalog(adapters.catalog),
        notifier=EnforcingNotifier(adapters.notifier, settings.alert_topic_arn, settings.event_bus_name),
        ledger=EnforcingRunLedger(adapters.ledger, settings.run_ledger_table),
        pending=EnforcingPendingSet(adapters.pending, settings.pending_table),
    )


def unwrap(adapter: Any) -> Any:
    """The local adapter inside a checking wrapper (or the adapter itself)."""
    return adapter._inner if isinstance(adapter, _Checked) else adapter


# -- Lambda handlers, jobs and Step Functions service integrations ---------------------------------

# How Step Functions names an access-denied error of each integration (Catch/Retry match these).
SERVICE_ERRORS = {
    "lambda": "Lambda.AWSLambdaException",
    "glue": "Glue.AccessDeniedException",
    "athena": "Athena.AccessDeniedException",
    "emr-serverless": "EMRServerless.AccessDeniedException",
    "sns": "SNS.AuthorizationErrorException",
    "events": "EventBridge.AccessDeniedException",
}


def enabled() -> bool:
    from lakehouse.access import SWITCH_ENV

    return os.environ.get(SWITCH_ENV, "on").lower() not in ("off", "0", "false", "no")


def function_role(logical_id: str) -> str | None:
    return model().function_roles.get(logical_id) if enabled() else None


def machine_role(machine: str) -> str | None:
    return model().machine_roles.get(machine) if enabled() else None


def invoke_arn(machine: str, function_logical_id: str) -> str:
    """The ARN the machine's definition invokes for a function (the `live` alias, as the template says)."""
    m = model()
    subs = (m.resolver.props(machine).get("DefinitionSubstitutions")) or {}
    for value in subs.values():
        if (
            isinstance(value, Mapping)
            and "Ref" in value
            and str(value["Ref"]).split(".")[0] == function_logical_id
        ):
            return str(m.resolver.value(value))
    return m.resolver.arn(function_logical_id)


def lambda_as(machine: str, function_logical_id: str, handler: Any) -> Any:
    """A Lambda handler as the machine invokes it: lambda:InvokeFunction by the machine's role, then the
    handler acting as the function's role."""
    from lakehouse.local.sfn import TaskFailed

    def call(event: Any, context: Any) -> Any:
        sm_role = machine_role(machine)
        if sm_role is not None:
            try:
                with as_role(sm_role, "local-execution"):
                    authorize(sm_role, "lambda:InvokeFunction", invoke_arn(machine, function_logical_id))
            except AccessDeniedError as exc:
                raise TaskFailed(SERVICE_ERRORS["lambda"], str(exc)) from exc
        with as_role(function_role(function_logical_id), function_logical_id):
            return handler(event, context)

    return call


def service_as(machine: str, key: str, handler: Any) -> Any:
    """A service integration as the machine runs it: its IAM needs checked for the machine's role, the
    handler then acting as that role (a job handler switches to the job's own role)."""
    from lakehouse.local.sfn import TaskFailed

    def call(task_key: str, params: dict[str, Any]) -> Any:
        role = machine_role(machine)
        if role is None:
            return handler(task_key, params)
        with as_role(role, "local-execution"):
            try:
                integration_checks(machine, role, key, params)
                return handler(task_key, params)
            except AccessDeniedError as exc:
                raise TaskFailed(
                    SERVICE_ERRORS.get(key.split(":")[0], "States.TaskFailed"), str(exc)
                ) from exc

    return call


def _substitution(machine: str, name: str) -> str:
    value = ((model().resolver.props(machine).get("DefinitionSubstitutions")) or {}).get(name)
    return str(model().resolver.value(value)) if value is not None else ""


def integration_checks(machine: str, role: str, key: str, params: Mapping[str, Any]) -> None:
    """What AWS authorizes for one service integration (Step Functions' IAM docs per service)."""
    base = f"{REGION}:{ACCOUNT_ID}"
    service = key.split(":")[0]
    if service == "glue":
        job = f"arn:{PARTITION}:glue:{base}:job/{params.get('JobName')}"
        for action in ("glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"):
            authorize(role, action, job)
    elif service == "emr-serverless":
        app = f"arn:{PARTITION}:emr-serverless:{base}:/applications/{params.get('ApplicationId')}"
        authorize(role, "emr-serverless:StartJobRun", app)
        for action in ("emr-serverless:GetJobRun", "emr-serverless:CancelJobRun"):
            authorize(role, action, f"{app}/jobruns/local")
        rule = f"arn:{PARTITION}:events:{base}:rule/StepFunctionsGetEventsForEMRServerlessJobRule"
        for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
            authorize(role, action, rule)
        passed = model().role_by_arn(str(params.get("ExecutionRoleArn") or "")).arn
        authorize(role, "iam:PassRole", passed, {"iam:PassedToService": "emr-serverless.amazonaws.com"})
    elif service == "athena":
        _athena_checks(machine, role, key, params)
    elif service == "sns":
        topic = str(params.get("TopicArn") or "")
        authorize(role, "sns:Publish", topic)
        key_id = _topic_key(topic)
        if key_id:
            authorize_kms(role, "kms:GenerateDataKey", key_id)
            authorize_kms(role, "kms:Decrypt", key_id)
    elif service == "events":
        for entry in params.get("Entries") or []:
            bus = str(entry.get("EventBusName") or "default")
            arn = bus if bus.startswith("arn:") else f"arn:{PARTITION}:events:{base}:event-bus/{bus}"
            authorize(role, "events:PutEvents", arn)


def _athena_checks(machine: str, role: str, key: str, params: Mapping[str, Any]) -> None:
    """Athena runs with the caller's permissions: the workgroup, the catalog entries and S3 locations of
    the tables the query reads, and the query results in the workgroup's output bucket."""
    base = f"{REGION}:{ACCOUNT_ID}"
    workgroup = str(params.get("WorkGroup") or _substitution(machine, "AthenaWorkGroup") or "primary")
    wg_arn = f"arn:{PARTITION}:athena:{base}:workgroup/{workgroup}"
    results = _athena_results_bucket()
    if key.startswith("athena:getQueryResults"):
        authorize(role, "athena:GetQueryResults", wg_arn)
        if results:
            check_s3(role, "s3:GetObject", results, f"{params.get('QueryExecutionId')}.csv")
        return
    for action in ("athena:StartQueryExecution", "athena:GetQueryExecution"):
        authorize(role, action, wg_arn)
    database = str((params.get("QueryExecutionContext") or {}).get("Database") or "")
    for table in _query_tables(str(params.get("QueryString") or "")):
        db = table[0] or database
        for arn in glue_arns(db, None):
            authorize(role, "glue:GetDatabase", arn)
        for arn in glue_arns(db, table[1]):
            authorize(role, "glue:GetTable", arn)
        location = _table_location(table[1])
        if location:
            bucket, prefix = location
            check_s3(role, "s3:ListBucket", bucket, prefix + "/_delta_log/")
            check_s3(role, "s3:GetObject", bucket, prefix + "/_delta_log/00000000000000000000.json")
    if results:
        authorize(role, "s3:GetBucketLocation", f"arn:{PARTITION}:s3:::{results}")
        check_s3(role, "s3:PutObject", results, "local-query.csv")


def _query_tables(sql: str) -> list[tuple[str, str]]:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="athena")
    except sqlglot.errors.ParseError:
        return []
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return sorted({(t.db, t.name) for t in tree.find_all(exp.Table) if t.name and t.name not in ctes})


def _table_location(name: str) -> tuple[str, str] | None:
    """Where a catalog table's data lives: the lake's `tables/<name>` (datasets) or `derived/<name>`."""
    from lakehouse.settings import Settings

    settings = Settings()

    lake = settings.lake_bucket
    home = Path(settings.home).resolve() / "buckets" / lake
    if (home / layout.DERIVED / name).is_dir():
        return lake, f"{layout.DERIVED}/{name}"
    return lake, f"{layout.TABLES}/{name}"


def _athena_results_bucket() -> str | None:
    m = model()
    for logical_id, res in m.resolver.resources.items():
        if isinstance(res, Mapping) and res.get("Type") == "AWS::Athena::WorkGroup":
            conf = (m.resolver.props(logical_id).get("WorkGroupConfiguration") or {}).get(
                "ResultConfiguration"
            ) or {}
            location = str(m.resolver.value(conf.get("OutputLocation") or ""))
            if location.startswith("s3://"):
                return location[5:].split("/", 1)[0]
    return None


def job_role(kind: str, params: Mapping[str, Any]) -> str | None:
    """The role a Glue job (by JobName) or an EMR Serverless job run (ExecutionRoleArn) runs as."""
    if not enabled():
        return None
    if kind == "glue":
        return model().glue_job_roles.get(str(params.get("JobName")))
    return model().role_by_arn(str(params.get("ExecutionRoleArn") or "")).name
