"""What the Spark job entry points share: run input → one ingest, and JSON results next to the lake."""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from lakehouse import access, identifiers, layout
from lakehouse.commit_log import txn_version
from lakehouse.contracts import ContractRegistry
from lakehouse.errors import ContractError
from lakehouse.events import app_id_for, object_version, started_at
from lakehouse.sql.compiler import RunMeta


def _jvm(spark: SparkSession) -> Any:
    from lakehouse.spark.delta_tables import _jvm as jvm

    return jvm(spark)


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write a small UTF-8 object through Hadoop's FileSystem (s3://, file:// or a local path)."""
    access.require(uri, "s3:PutObject")  # local IAM (docs/IAM.md)
    if "://" not in uri or uri.startswith("file:"):
        path = Path(uri.removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    jvm = _jvm(spark)
    hpath = jvm.org.apache.hadoop.fs.Path(uri)
    fs = hpath.getFileSystem(spark._jsc.hadoopConfiguration())
    stream = fs.create(hpath, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def stage_pinned_source(state: dict[str, Any], lake_bucket: str | None, store: Any = None) -> str | None:
    """Copy exactly the run's object version to `s3://<lake>/runs/<run_id>/source/<name>`; its URI.

    Spark reads paths (s3a/EMRFS) and cannot pin a version, and a file overwritten while the executors
    read it would mix two versions. So the Glue job reads a copy that only this run writes: a server-side
    CopyObject of the event's `VersionId` (or with `CopySourceIfMatch` on its ETag in an unversioned
    bucket). A version that is gone or changed raises ObjectChangedError before anything is read.
    None if the run names no version or ETag (nothing to pin) or there is no lake bucket to stage in.
    """
    version_id = str(state.get("version_id") or "") or None
    etag = str(state.get("etag") or "").strip('"') or None
    if not lake_bucket or not (version_id or etag):
        return None
    if store is None:
        from lakehouse.adapters.aws import S3ObjectStore

        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        store = S3ObjectStore(region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3"))
    name = posixpath.basename(str(state["key"])) or "object"
    staged_key = layout.staged_source_key(str(state["run_id"]), name)
    store.copy(str(state["bucket"]), str(state["key"]), lake_bucket, staged_key, version_id, etag)
    return str(store.uri(lake_bucket, staged_key))


def ingest_run(
    spark: SparkSession,
    run: dict[str, Any],
    *,
    datasets_dir: Path | str,
    result_uri: str | None = None,
    rejects_uri: str | None = None,
    source_uri: str | None = None,
    lake_bucket: str | None = None,
    quarantine_bucket: str | None = None,
) -> dict[str, Any]:
    """Ingest the object a state-machine run names and write `$.commit` as JSON to `result_uri`.

    Defaults follow `lakehouse.layout`: the object is `s3://<bucket>/<key>`, rejects go to
    `s3://<quarantine>/rows/<dataset>/<object_id>/rejects.parquet` (a drain's batch of one names its
    object; else the run id), the result to
    `s3://<lake>/runs/<run_id>/commit.json`. Local runs pass the folders instead.
    """
    from lakehouse.spark.ingest import ingest_object

    state = run.get("run", run)
    for required in ("run_id", "dataset", "bucket", "key"):
        if not state.get(required):
            raise ContractError(f"run input lacks {required!r}")
    run_id, dataset, bucket, key = (str(state[k]) for k in ("run_id", "dataset", "bucket", "key"))
    identifiers.run_id(run_id)  # both reach keys: runs/<run_id>/, rows/<dataset>/<run_id>/
    identifiers.name(dataset)
    inspection = dict(state.get("inspection") or {})
    version = str(state.get("version_id") or state.get("sequencer") or state.get("etag") or "")
    contract = ContractRegistry.from_location(datasets_dir).get(dataset)
    s3_uri = layout.s3_uri(bucket, key)
    if rejects_uri is None:
        if not quarantine_bucket:
            raise ContractError("rejects_uri or quarantine_bucket is required")
        object_id = str(state.get("object_id") or run_id)
        rejects_uri = layout.s3_uri(quarantine_bucket, layout.rejects_key(dataset, object_id))
    if result_uri is None:
        if not lake_bucket:
            raise ContractError("result_uri or lake_bucket is required")
        result_uri = layout.s3_uri(lake_bucket, layout.commit_result_key(run_id))
    table_uri = inspection.get("table_uri") or (
        layout.s3_uri(lake_bucket, layout.table_key(dataset)) if lake_bucket else None
    )
    if not table_uri:
        raise ContractError("run input lacks inspection.table_uri (and no lake bucket was given)")
    staged = stage_pinned_source(state, lake_bucket) if source_uri is None else None
    source_uri = source_uri or staged
    meta = RunMeta(source_uri=s3_uri, source_version=version, ingested_at=started_at(state), run_id=run_id)
    result = ingest_object(
        spark,
        source_uri or s3_uri,
        contract,
        str(table_uri),
        meta,
        app_id=str(inspection.get("app_id") or app_id_for(dataset, bucket, key, object_version(state))),
        rejects_uri=rejects_uri,
        source_name=s3_uri,
        txn_version=txn_version(state),
    )
    result["rejects_uri"] = result.pop("rejects_path")
    write_text(spark, result_uri, json.dumps(result, sort_keys=True))
    if staged:
        _drop_staged(spark, staged)
    return result


def _drop_staged(spark: SparkSession, uri: str) -> None:
    """Best effort: the staged copy has served (the lake's `runs/` lifecycle rule expires it anyway)."""
    try:
        jvm = _jvm(spark)
        hpath = jvm.org.apache.hadoop.fs.Path(uri)
        hpath.getFileSystem(spark._jsc.hadoopConfiguration()).delete(hpath, False)
    except Exception:  # a leftover copy is harmless
        pass
