"""What every stage needs, built once per process (a Lambda cold start, a local run)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from lakehouse import identifiers
from lakehouse.adapters.factory import Adapters, build_adapters
from lakehouse.contracts.loader import ContractRegistry
from lakehouse.contracts.model import Contract
from lakehouse.errors import ContractError, InvalidInputError
from lakehouse.events import started_at as started_at  # re-exported (stages, local jobs)
from lakehouse.settings import Settings, get_settings


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

    def table_uri(self, dataset: str) -> str:
        dataset = identifiers.name(dataset)
        return self.adapters.objects.uri(self.settings.lake_bucket, f"tables/{dataset}")

    def derived_uri(self, model: str) -> str:
        model = identifiers.name(model, "model")
        return self.adapters.objects.uri(self.settings.lake_bucket, f"derived/{model}")

    @property
    def storage_options(self) -> dict[str, str]:
        return self.adapters.objects.storage_options()


@dataclass(frozen=True)
class RunState:
    """The fields of the state machine's state that stages read (docs/ARCHITECTURE.md)."""

    raw: dict[str, Any]

    @classmethod
    def parse(cls, event: Any) -> RunState:
        if not isinstance(event, dict):
            raise InvalidInputError(f"stage input must be a JSON object, got {type(event).__name__}")
        state = event.get("run", event)
        for required in ("run_id", "dataset"):
            if not state.get(required):
                raise ContractError(f"stage input lacks {required!r}")
        # Both reach keys and paths (runs/<run_id>/, objects/<dataset>/<run_id>/, the work folder).
        identifiers.run_id(state["run_id"])
        identifiers.name(state["dataset"])
        return cls(dict(state))

    @property
    def run_id(self) -> str:
        return str(self.raw["run_id"])

    @property
    def dataset(self) -> str:
        return str(self.raw["dataset"])

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
