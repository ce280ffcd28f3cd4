"""What the Spark job entry points share: a Glue manifest → one commit, and JSON results next to the lake."""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pyspark.sql import SparkSession

from lakehouse import access, layout
from lakehouse import ingest_core as core
from lakehouse.contracts import ContractRegistry
from lakehouse.contracts.model import Contract
from lakehouse.errors import ContractError, InvalidInputError
from lakehouse.events import started_at
from lakehouse.spark.batch import StagedObject, StagingSparkBackend, commit_staged
from lakehouse.sql.compiler import RunMeta
from lakehouse.state import GlueManifest, ManifestObject


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


def read_text(spark: SparkSession, uri: str) -> str:
    """Read a small UTF-8 object through Hadoop's FileSystem (s3://, file:// or a local path)."""
    access.require(uri, "s3:GetObject")  # local IAM (docs/IAM.md)
    if "://" not in uri or uri.startswith("file:"):
        return Path(uri.removeprefix("file://")).read_text(encoding="utf-8")
    jvm = _jvm(spark)
    hpath = jvm.org.apache.hadoop.fs.Path(uri)
    stream = hpath.getFileSystem(spark._jsc.hadoopConfiguration()).open(hpath)
    try:
        return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream)).decode("utf-8")
    finally:
        stream.close()


def stage_pinned_source(
    obj: ManifestObject, run_id: str, lake_bucket: str | None, store: Any = None
) -> str | None:
    """Copy exactly the object's version to `s3://<lake>/runs/<run_id>/source/<object_id>/<name>`; its URI.

    Spark reads paths (s3a/EMRFS) and cannot pin a version, and a file overwritten while the executors
    read it would mix two versions. So the Glue job reads a copy that only this run writes: a server-side
    CopyObject of the event's `VersionId` (or with `CopySourceIfMatch` on its ETag in an unversioned
    bucket). A version that is gone or changed raises ObjectChangedError before anything is read.
    None if the object names no version or ETag (nothing to pin) or there is no lake bucket to stage in.
    """
    version_id = obj.version_id or None
    etag = (obj.etag or "").strip('"') or None
    if not lake_bucket or not (version_id or etag):
        return None
    if store is None:
        from lakehouse.adapters.aws import S3ObjectStore

        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        store = S3ObjectStore(region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3"))
    name = posixpath.basename(obj.key) or "object"
    staged_key = layout.staged_source_key(run_id, obj.object_id, name)
    store.copy(obj.bucket, obj.key, lake_bucket, staged_key, version_id, etag)
    return str(store.uri(lake_bucket, staged_key))


def ingest_manifest(  # noqa: PLR0913 - the job's options, keyword-only
    spark: SparkSession,
    manifest_uri: str,
    *,
    datasets_dir: Path | str,
    run_id: str | None = None,
    result_uri: str | None = None,
    lake_bucket: str | None = None,
    quarantine_bucket: str | None = None,
    source_uris: dict[str, str] | None = None,
    rejects_uris: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Commit the objects a Glue manifest lists in one Delta transaction; write `$.commit` as JSON.

    Defaults follow `lakehouse.layout`: each object is read from a pinned copy staged in the lake (or
    `source_uris[object_id]`, locally its immutable snapshot), its rejects go to
    `s3://<quarantine>/rows/<dataset>/<object_id>/rejects.parquet` (or `rejects_uris[object_id]`), the
    result to `s3://<lake>/runs/<run_id>/commit.json`. An object's error names it (`(object <id>)`), so
    the drain splits it out of the batch.
    """
    manifest = parse_manifest(read_text(spark, manifest_uri), manifest_uri)
    if run_id is not None and run_id != manifest.run_id:
        raise ContractError(f"{manifest_uri} is the manifest of run {manifest.run_id!r}, not of {run_id!r}")
    contract = ContractRegistry.from_location(datasets_dir).get(manifest.dataset)
    if result_uri is None:
        if not lake_bucket:
            raise ContractError("result_uri or lake_bucket is required")
        result_uri = layout.s3_uri(lake_bucket, layout.commit_result_key(manifest.run_id))
    staged_copies: list[str] = []
    objects: list[StagedObject] = []
    try:
        for obj in manifest.objects:
            source = (source_uris or {}).get(obj.object_id)
            if source is None:
                source = stage_pinned_source(obj, manifest.run_id, lake_bucket)
                staged_copies += [source] if source else []
            rejects = (rejects_uris or {}).get(obj.object_id) or _rejects_uri(
                quarantine_bucket, manifest.dataset, obj.object_id
            )
            objects.append(_stage(spark, contract, manifest, obj, source, rejects))
        landed = commit_staged(spark, contract, manifest.table_uri, manifest.run_id, objects)
    finally:
        for staged in objects:
            staged.backend.release()
    result = batch_result(objects, landed)
    write_text(spark, result_uri, json.dumps(result, sort_keys=True))
    for copy in staged_copies:
        _drop_staged(spark, copy)
    return result


def parse_manifest(text: str, where: str) -> GlueManifest:
    try:
        return GlueManifest.model_validate_json(text)
    except ValidationError as exc:
        raise InvalidInputError(f"{where}: not a Glue manifest: {exc}") from exc


def _rejects_uri(quarantine_bucket: str | None, dataset: str, object_id: str) -> str:
    if not quarantine_bucket:
        raise ContractError("rejects_uris or quarantine_bucket is required")
    return layout.s3_uri(quarantine_bucket, layout.rejects_key(dataset, object_id))


def _stage(
    spark: SparkSession,
    contract: Contract,
    manifest: GlueManifest,
    obj: ManifestObject,
    source: str | None,
    rejects_uri: str,
) -> StagedObject:
    """One object's ingest flow, its rows staged for the batch's commit."""
    s3_uri = layout.s3_uri(obj.bucket, obj.key)
    meta = RunMeta(
        source_uri=s3_uri,
        source_version=obj.source_version,
        ingested_at=started_at({"started_at": obj.ingested_at}),
        run_id=manifest.run_id,
    )
    backend = StagingSparkBackend(spark, source or s3_uri, manifest.table_uri, rejects_uri, None)
    txn = core.Txn(obj.app_id, obj.txn_version, meta)
    try:
        result = core.ingest(backend, contract, meta, txn, s3_uri)
    except Exception as exc:
        backend.release()
        named = _named(manifest, obj, exc)
        if named is exc:
            raise
        raise named from exc
    except BaseException:
        backend.release()
        raise
    return StagedObject(obj.object_id, result, txn, backend)


def _named(manifest: GlueManifest, obj: ManifestObject, exc: Exception) -> Exception:
    """An object's error, naming it in a batch of several (`(object <id>)`), so SplitBatch isolates it."""
    mark = f"(object {obj.object_id})"
    if len(manifest.objects) == 1 or mark in str(exc):
        return exc
    try:
        return type(exc)(f"{exc} {mark}")
    except Exception:
        return exc


def batch_result(objects: list[StagedObject], landed: tuple[int, int, int] | None) -> dict[str, Any]:
    """`$.commit`: a batch of one is that object's result; a batch of several has each object's too."""
    results = [s.result for s in objects]
    if landed is not None:
        before, after, written = landed
        for r in results:
            if r.status == "committed" and not r.resumed:
                r.version_before, r.version_after = before, after
        if len(objects) == 1:
            results[0].rows_written = written  # a merge: rows inserted + updated, as the commit counted
    if len(objects) == 1:
        one = results[0].as_dict()
        one["rejects_uri"] = one.pop("rejects_path")
        return one
    per_object = [
        core.object_commit(s.object_id, r, r.rejects_path) for s, r in zip(objects, results, strict=True)
    ]
    return core.batch_commit_result(per_object, results, landed).model_dump(mode="json")


def _drop_staged(spark: SparkSession, uri: str) -> None:
    """Best effort: the staged copy has served (the lake's `runs/` lifecycle rule expires it anyway)."""
    try:
        jvm = _jvm(spark)
        hpath = jvm.org.apache.hadoop.fs.Path(uri)
        hpath.getFileSystem(spark._jsc.hadoopConfiguration()).delete(hpath, False)
    except Exception:  # a leftover copy is harmless
        pass
