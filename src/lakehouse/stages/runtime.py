"""What every stage needs, built once per process (a Lambda cold start, a local run)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lakehouse.adapters.factory import Adapters, build_adapters
from lakehouse.contracts.loader import ContractRegistry
from lakehouse.contracts.model import Contract
from lakehouse.errors import ContractError, InvalidInputError
from lakehouse.events import started_at as started_at  # re-exported (stages, local jobs)
from lakehouse.layout import Layout
from lakehouse.settings import Settings, get_settings
from lakehouse.state import Batch, CommitResult, ErrorInfo, Inspection, RunInput


@dataclass
class Runtime:
    settings: Settings
    adapters: Adapters

    @classmethod
    def create(cls, settings: Settings | None = None, adapters: Adapters | None = None) -> Runtime:
        settings = settings or get_settings()
        return cls(settings, adapters or build_adapters(settings))

    @cached_property
    def contracts(self) -> ContractRegistry:
        return ContractRegistry.from_dir(self.settings.datasets_dir)

    def contract(self, dataset: str) -> Contract:
        return self.contracts.get(dataset)

    @property
    def layout(self) -> Layout:
        return Layout(self.settings.lake_bucket, self.settings.quarantine_bucket)

    def table_uri(self, dataset: str) -> str:
        where = self.layout.table(dataset)
        return self.adapters.objects.uri(where.bucket, where.key)

    def derived_uri(self, model: str) -> str:
        where = self.layout.derived(model)
        return self.adapters.objects.uri(where.bucket, where.key)

    @property
    def storage_options(self) -> dict[str, str]:
        return self.adapters.objects.storage_options()


_M = TypeVar("_M", bound=BaseModel)


def parse_model(model: type[_M], value: Any, where: str) -> _M:
    """`value` as `model`; InvalidInputError naming the fields that do not fit."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInputError(f"{where}: {problems}") from exc


_OBJECT_KEYS = ("bucket", "key", "version_id", "etag", "size", "sequencer", "event_time")


@dataclass(frozen=True)
class RunState:
    """A stage's view of the state machine's state (lakehouse.state.IngestState, docs/ARCHITECTURE.md):
    the run input parsed, and each section parsed when a stage reads it."""

    raw: dict[str, Any]
    input: RunInput

    @classmethod
    def parse(cls, event: Any) -> RunState:
        if not isinstance(event, dict):
            raise InvalidInputError(f"stage input must be a JSON object, got {type(event).__name__}")
        state = event.get("run", event)
        if not isinstance(state, dict):
            raise InvalidInputError(f"stage input 'run' must be a JSON object, got {type(state).__name__}")
        for required in ("run_id", "dataset"):
            if not state.get(required):
                raise ContractError(f"stage input lacks {required!r}")
        # run_id and dataset reach keys and paths (runs/<run_id>/, objects/<dataset>/<run_id>/, the
        # work folder): RunInput validates both (lakehouse.identifiers).
        return cls(dict(state), parse_model(RunInput, state, "stage input"))

    @property
    def run_id(self) -> str:
        return self.input.run_id

    @property
    def object_id(self) -> str:
        """The object's own id (ledger record, quarantine and rejects keys); the run id when the run
        was started for one object."""
        return str(self.raw.get("object_id") or self.run_id)

    def objects(self) -> list[dict[str, Any]]:
        """The batch's objects (`$.batch.objects`), or the run's own object."""
        batch = self.raw.get("batch")
        if isinstance(batch, dict) and isinstance(batch.get("objects"), list):
            return [o for o in batch["objects"] if isinstance(o, dict)]
        if self.bucket and self.key:
            return [{"object_id": self.object_id, **{k: self.raw.get(k) for k in _OBJECT_KEYS}}]
        return []

    @property
    def is_batch(self) -> bool:
        """More than one object: the batch states (one object takes the single-object path)."""
        return len(self.objects()) > 1

    def for_object(self, obj: dict[str, Any]) -> RunState:
        """This state as if the run were started for `obj` alone (its pins, key and object id)."""
        raw = {**self.raw, **{k: obj.get(k) for k in _OBJECT_KEYS}, "object_id": obj.get("object_id")}
        if obj.get("txn_version") is not None:
            raw["txn_version"] = obj["txn_version"]
        return RunState(raw, self.input)

    @property
    def dataset(self) -> str:
        return self.input.dataset

    @property
    def bucket(self) -> str:
        return str(self.raw.get("bucket", ""))

    @property
    def key(self) -> str:
        return str(self.raw.get("key", ""))

    @property
    def version_id(self) -> str | None:
        """The object version the run was started for (versioned buckets)."""
        return str(self.raw.get("version_id") or "") or None

    @property
    def etag(self) -> str | None:
        """The ETag the event named: what an unversioned bucket's read is pinned to."""
        return str(self.raw.get("etag") or "").strip('"') or None

    def pins(self) -> dict[str, str | None]:
        """`version_id`/`etag` arguments that pin every read to the event's object version: the version
        id where the bucket is versioned (a version's bytes never change), else the ETag."""
        if self.version_id:
            return {"version_id": self.version_id, "etag": None}
        return {"version_id": None, "etag": self.etag}

    @property
    def source_version(self) -> str:
        return str(self.raw.get("version_id") or self.raw.get("sequencer") or self.raw.get("etag") or "")

    @property
    def object_version(self) -> str:
        """The object version's identity for exactly-once (version id, else ETag)."""
        from lakehouse.events import object_version

        return object_version(self.raw)

    @property
    def txn_version(self) -> int:
        from lakehouse.commit_log import txn_version

        return txn_version(self.raw)

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name)
        return dict(value) if isinstance(value, dict) else {}

    def _typed(self, name: str, model: type[_M]) -> _M | None:
        value = self.raw.get(name)
        return None if value is None else parse_model(model, value, f"state ${name}")

    @property
    def inspection(self) -> Inspection | None:
        """`$.inspection` (None before Inspect ran, e.g. a rollback after Inspect failed)."""
        return self._typed("inspection", Inspection)

    @property
    def batch(self) -> Batch:
        """`$.batch`, typed (an empty batch before ClaimBatch ran); `objects()` reads it leniently."""
        return self._typed("batch", Batch) or Batch()

    @property
    def commit(self) -> CommitResult | None:
        return self._typed("commit", CommitResult)

    @property
    def error(self) -> ErrorInfo:
        """`$.error`: what the `Catch` caught (an empty ErrorInfo when nothing did)."""
        value = self.raw.get("error")
        return ErrorInfo.model_validate(value if isinstance(value, dict) else {})


_RUNTIMES: dict[tuple[tuple[str, Any], ...], Runtime] = {}


def get_runtime() -> Runtime:
    """The runtime for the current environment, built once per distinct configuration.

    Lambda handlers call this on every invocation: in AWS the environment never changes, so it is
    built once per cold start; locally one process may serve several homes one after another.
    """
    settings = Settings()
    key = tuple(sorted(settings.model_dump().items(), key=lambda kv: kv[0]))
    key = tuple((k, str(v)) for k, v in key)
    if key not in _RUNTIMES:
        _RUNTIMES[key] = Runtime.create(settings)
    return _RUNTIMES[key]
