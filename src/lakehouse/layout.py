"""Where everything lives in the buckets: every storage key convention, and the s3:// <-> local mapping.

| What | Bucket | Key |
| --- | --- | --- |
| a dataset's Delta table | lake | `tables/<dataset>` |
| a derived (gold) table | lake | `derived/<model>` |
| the Glue job's commit result | lake | `runs/<run_id>/commit.json` |
| the Glue job's manifest (the objects of its batch) | lake | `runs/<run_id>/manifest.json` |
| the Glue job's staged copy of an object | lake | `runs/<run_id>/source/<object_id>/<name>` |
| rejected rows | quarantine | `rows/<dataset>/<run_id>/rejects.parquet` |
| a quarantined object, and its reason | quarantine | `objects/<dataset>/<run_id>/<name>` (+ `.reason.json`) |

Locally, bucket `b` is the folder `<home>/buckets/b`. Standard library only: the Spark jobs (Python 3.9
on EMR) may import it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lakehouse import identifiers

TABLES = "tables"
DERIVED = "derived"
RUNS = "runs"
ROWS = "rows"
OBJECTS = "objects"
REASON_SUFFIX = ".reason.json"
S3_SCHEMES = ("s3://", "s3a://")


@dataclass(frozen=True)
class Location:
    """An object (or prefix) in a bucket."""

    bucket: str
    key: str

    @property
    def s3_uri(self) -> str:
        return s3_uri(self.bucket, self.key)

    def local_path(self, home: Path) -> Path:
        """The object's path in the local object store under `home`."""
        return bucket_root(home, self.bucket) / self.key if self.key else bucket_root(home, self.bucket)


@dataclass(frozen=True)
class Layout:
    """The key conventions, bound to the lake and quarantine buckets."""

    lake_bucket: str
    quarantine_bucket: str

    def table(self, dataset: str) -> Location:
        return Location(self.lake_bucket, table_key(dataset))

    def derived(self, model: str) -> Location:
        return Location(self.lake_bucket, derived_key(model))

    def commit_result(self, run_id: str) -> Location:
        return Location(self.lake_bucket, commit_result_key(run_id))

    def manifest(self, run_id: str) -> Location:
        return Location(self.lake_bucket, manifest_key(run_id))

    def staged_source(self, run_id: str, object_id: str, name: str) -> Location:
        return Location(self.lake_bucket, staged_source_key(run_id, object_id, name))

    def rejects(self, dataset: str, run_id: str) -> Location:
        return Location(self.quarantine_bucket, rejects_key(dataset, run_id))

    def quarantined_object(self, dataset: str, run_id: str, name: str) -> Location:
        return Location(self.quarantine_bucket, quarantined_object_key(dataset, run_id, name))

    def quarantine_reason(self, dataset: str, run_id: str, name: str) -> Location:
        return Location(self.quarantine_bucket, quarantined_object_key(dataset, run_id, name) + REASON_SUFFIX)


def table_key(dataset: str) -> str:
    return f"{TABLES}/{identifiers.name(dataset)}"


def derived_key(model: str) -> str:
    return f"{DERIVED}/{identifiers.name(model, 'model')}"


def commit_result_key(run_id: str) -> str:
    return f"{RUNS}/{identifiers.run_id(run_id)}/commit.json"


def manifest_key(run_id: str) -> str:
    return f"{RUNS}/{identifiers.run_id(run_id)}/manifest.json"


def staged_source_key(run_id: str, object_id: str, name: str) -> str:
    """`runs/<run_id>/source/<object_id>/<name>`: one folder per object (two versions of one key may
    share a batch); `name` is the object's file name (no folders)."""
    base = PurePosixPath(name).name or "object"
    return f"{RUNS}/{identifiers.run_id(run_id)}/source/{identifiers.run_id(object_id)}/{base}"


def rejects_key(dataset: str, run_id: str) -> str:
    return f"{ROWS}/{identifiers.name(dataset)}/{identifiers.run_id(run_id)}/rejects.parquet"


def quarantined_object_key(dataset: str, run_id: str, name: str) -> str:
    """`objects/<dataset>/<run_id>/<name>`; `name` is the object's file name (no folders)."""
    base = PurePosixPath(name).name or "object"
    return f"{OBJECTS}/{identifiers.name(dataset)}/{identifiers.run_id(run_id)}/{base}"


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def parse_s3_uri(uri: str) -> Location | None:
    """(bucket, key) of an `s3://` or `s3a://` URI; None for anything else."""
    if not uri.startswith(S3_SCHEMES):
        return None
    bucket, _, key = uri.split("://", 1)[1].partition("/")
    return Location(bucket, key)


def bucket_root(home: Path, bucket: str) -> Path:
    """The local folder of `bucket` in the local object store under `home`."""
    return Path(home) / "buckets" / bucket


def local_location(home: Path, path: str) -> Location | None:
    """The (bucket, key) a local path (or `file://` URI) under `<home>/buckets/` stands for; None for a
    path outside the local object store. A trailing `/` (a prefix) is kept."""
    text = path.removeprefix("file://")
    root = str(Path(home).resolve() / "buckets") + os.sep
    full = os.path.abspath(text)
    if not full.startswith(root):
        return None
    bucket, _, key = full[len(root) :].replace(os.sep, "/").partition("/")
    if text.endswith("/") and key:
        key += "/"
    return Location(bucket, key)
