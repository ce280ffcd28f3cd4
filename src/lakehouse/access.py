"""Access checkpoints: where code reaches storage without going through an adapter, it says what it does.

delta-rs, DuckDB and Spark open Delta tables and files by URI, so in a local run their reads and writes
never pass the (checked) local adapters. At those places the code calls `require(uri, *actions)` with
the S3 actions the same operation needs in AWS. In AWS nothing is checked here (IAM itself decides);
in a local run with IAM enforcement on, the role the task runs as (`LAKEHOUSE_IAM_ROLE`, set by the local
executor) must allow them, or `AccessDeniedError` is raised as AWS would. See docs/IAM.md.

No dependency: the Lambda path and the Spark jobs import this module, and the local IAM stand-in
(`lakehouse.local.enforce`) is loaded by name, only when local enforcement is on. It is a plug-in of the
local runtime, not an import: layers below `lakehouse.local` never import it (docs/ARCHITECTURE.md,
"Layers"), and the EMR bundle, which follows imports, does not ship the local runtime.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, TypeVar

_T = TypeVar("_T")

ROLE_ENV = "LAKEHOUSE_IAM_ROLE"
SWITCH_ENV = "LAKEHOUSE_IAM"

READ = ("s3:ListBucket", "s3:GetObject")
WRITE = ("s3:ListBucket", "s3:GetObject", "s3:PutObject")


_ENFORCER = "lakehouse.local.enforce"


def _enforcer() -> Any:
    return importlib.import_module(_ENFORCER)


def active_role() -> str | None:
    """The role the current task acts as, when local IAM enforcement is on."""
    role = os.environ.get(ROLE_ENV)
    if not role or os.environ.get(SWITCH_ENV, "on").lower() in ("off", "0", "false", "no"):
        return None
    return role


def require(uri: str, *actions: str) -> None:
    """The object (or, for s3:ListBucket, the prefix) at `uri` is about to get these S3 actions."""
    role = active_role()
    if role is None:
        return
    _enforcer().require_uri(role, uri, actions)


def authorize(action: str, resource: str) -> None:
    """A non-storage call (e.g. `states:StartExecution`) on `resource` is about to be made."""
    role = active_role()
    if role is None:
        return
    _enforcer().authorize(role, action, resource)


def enforcing(adapters: _T, settings: object) -> _T:
    """The local adapters, each call checked against the task's role (`LAKEHOUSE_IAM=off`: unchanged)."""
    wrapped: _T = _enforcer().wrap(adapters, settings)
    return wrapped


def require_table(uri: str, *, write: bool = False, delete: bool = False) -> None:
    """A Delta table is about to be read (log listing + object reads), written (new objects) or vacuumed
    (deletes), as delta-rs and Delta Lake do on S3."""
    if active_role() is None:
        return
    base = uri.rstrip("/")
    require(base + "/_delta_log/", "s3:ListBucket")
    require(base + "/_delta_log/00000000000000000000.json", "s3:GetObject")
    if write:
        require(base + "/_delta_log/00000000000000000001.json", "s3:PutObject")
        require(base + "/part-00000-local.snappy.parquet", "s3:PutObject")
    if delete:
        require(base + "/part-00000-local.snappy.parquet", "s3:DeleteObject")
