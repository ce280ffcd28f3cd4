"""The Spark ingest engine (Glue, large objects): the same contract SQL and semantics as the DuckDB engine.

The file becomes the view `src` (every field a string, plus `_row`, the data row's ordinal in the
file), `compile_ingest(...).sql("spark")` becomes the view `transformed`, and accepted rows are
committed with a Delta app transaction (`txnAppId`/`txnVersion`), so a replay adds nothing.
"""

from __future__ import annotations

import csv
import os
import posixpath
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812
from pyspark.sql.types import StringType, StructField, StructType
from pyspark.sql.window import Window
from sqlglot import exp

from lakehouse import access, formats
from lakehouse import ingest_core as core
from lakehouse.commit_log import (
    FIRST_TXN_VERSION,
    SEARCH_DEPTH,
    commit_metadata,
)
from lakehouse.contracts.model import Contract, FormatSpec
from lakehouse.errors import InputLimitError, InvalidInputError
from lakehouse.formats import SAMPLE_BYTES, Detected, detect, detect_file, preflight
from lakehouse.names import CORRUPT_RECORD, SPARK_ROW_ID
from lakehouse.spark.delta_tables import (
    _jvm,
    delta_path,
    session_confs,
    table_property_defaults,
    table_state,
)
from lakehouse.sql.compiler import (
    REJECT_ACTION,
    REJECT_REASON,
    ROW_ORDINAL,
    IngestPlan,
    RunMeta,
    ident,
    rejected_rows,
    render,
)
from lakehouse.sql.evolution import (
    check_source_names,
    commit_select,
)
from lakehouse.table_properties import TABLE_CONFIGURATION
from lakehouse.types import spark_contract_type, spark_ddl_type

CORRUPT = CORRUPT_RECORD
_MAGIC_LEN = 4  # Parquet ends with b"PAR1": the tail format detection reads
_MID = SPARK_ROW_ID
TXN_APP_ID_CONF = "spark.databricks.delta.write.txnAppId"
TXN_VERSION_CONF = "spark.databricks.delta.write.txnVersion"
AUTO_MERGE_CONF = "spark.databricks.delta.schema.autoMerge.enabled"


# ---------------------------------------------------------------------------------------------
# The table: version, app transactions and schema, read from the Delta log through the JVM.


def quoted(name: str) -> str:
    """An identifier for Spark SQL, quoted and escaped by sqlglot (backticks, dots, spaces...)."""
    return ident(name).sql(dialect="spark")


def _c(name: str) -> Column:
    """A column by its exact name (dots, spaces and backticks included)."""
    return F.col(quoted(name))


def table_columns(spark: SparkSession, uri: str) -> dict[str, str]:
    """name → contract type for the table's current schema."""
    schema = spark.read.format("delta").load(uri).schema
    return {f.name: spark_contract_type(f.dataType.simpleString()) for f in schema.fields}


def create_table(
    spark: SparkSession, uri: str, columns: list[tuple[str, str]], partition_by: list[str]
) -> None:
    """Create the table if it does not exist, with the same properties delta-rs tables get."""
    cols = ", ".join(f"{quoted(n)} {spark_ddl_type(t)}" for n, t in columns)
    parts = f" PARTITIONED BY ({', '.join(quoted(c) for c in partition_by)})" if partition_by else ""
    props = ", ".join(f"'{k}' = '{v}'" for k, v in TABLE_CONFIGURATION.items() if v is not None)
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {delta_path(uri)} ({cols}) USING DELTA{parts} TBLPROPERTIES ({props})"
    )


# ---------------------------------------------------------------------------------------------
# The file: what it is (from its bytes), and the relation `src`.


def _is_local(uri: str) -> bool:
    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def _local_path(uri: str) -> Path:
    return Path(urlparse(uri).path if uri.startswith("file:") else uri)


def _hadoop_path(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    jvm = _jvm(spark)
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path, path.getFileSystem(spark._jsc.hadoopConfiguration())


def detect_object(spark: SparkSession, uri: str, name: str) -> Detected:
    """Classify the object from its first 64 KiB and last 4 bytes (local files or any Hadoop FS)."""
    if _is_local(uri):
        return detect_file(_local_path(uri), name)
    path, fs = _hadoop_path(spark, uri)
    size = int(fs.getFileStatus(path).getLen())
    io_utils = _jvm(spark).org.apache.commons.io.IOUtils
    stream = fs.open(path)
    try:
        head = bytes(io_utils.toByteArray(stream, min(size, SAMPLE_BYTES)))
        tail = b""
        if size >= _MAGIC_LEN:
            stream.seek(size - _MAGIC_LEN)
            tail = bytes(io_utils.toByteArray(stream, _MAGIC_LEN))
    finally:
        stream.close()
    return detect(head, tail, size, name)


def _readable_uri(spark: SparkSession, uri: str, detected: Detected, scratch: str) -> str:
    """A path Spark reads as the bytes say: Hadoop picks codecs by extension and hides `_`/`.` names."""
    base = posixpath.basename(uri.rstrip("/"))
    gz_named = base.endswith(".gz")
    is_gzip = detected.compression == "gzip"
    if gz_named == is_gzip and not base.startswith(("_", ".")):
        return uri
    stem = base.lstrip("_.").removesuffix(".gz") or "object"
    target = posixpath.join(scratch, stem + (".gz" if is_gzip else ""))
    if _is_local(uri) and _is_local(target):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(target):
            os.unlink(target)
        os.symlink(os.path.abspath(_local_path(uri)), target)
        return target
    src, src_fs = _hadoop_path(spark, uri)
    dst, dst_fs = _hadoop_path(spark, target)
    _jvm(spark).org.apache.hadoop.fs.FileUtil.copy(
        src_fs, src, dst_fs, dst, False, True, spark._jsc.hadoopConfiguration()
    )
    return target


def _header(spark: SparkSession, uri: str, spec: FormatSpec, name: str) -> list[str]:
    """The CSV header's field names, read by us (as the DuckDB engine does): stripped, blanks named."""
    if _is_local(uri):
        path = _local_path(uri)
        with path.open("rb") as handle:
            gzip = handle.read(2) == b"\x1f\x8b"
        line = formats.read_local_head(path, gzip)
    else:
        first = spark.read.text(uri).limit(1).collect()
        line = str(first[0][0] or "").lstrip("\ufeff") if first else ""
    return formats.parse_header(line, spec, name)


class _Source:
    """The file as a DataFrame of strings with `_row`, and the CSV lines the reader set aside."""

    def __init__(
        self, spark: SparkSession, uri: str, contract: Contract, detected: Detected, name: str
    ) -> None:
        self.spark = spark
        self.contract = contract
        spec = contract.format
        self.malformed: list[tuple[int, str, str]] = []
        self._delimiter = spec.delimiter
        self._persisted: DataFrame | None = None
        if detected.kind != spec.type:
            raise InvalidInputError(
                f"{name}: the contract of {contract.name!r} expects {spec.type} "
                f"but the file is {detected.kind}"
            )
        if _is_local(uri):
            # UTF-8 (Spark would replace invalid bytes with U+FFFD silently), line length, field
            # count, decompressed size: checked before Spark parses anything, as the DuckDB engine does.
            # (Remote objects are not pre-scanned: that would read them twice; see docs/DATASETS.md.)
            preflight(_local_path(uri), detected, spec, name)
        try:
            if detected.kind == "csv":
                raw, self.columns = self._csv(uri, spec, contract, name)
            elif detected.kind == "jsonl":
                raw, self.columns = self._jsonl(uri, name)
            else:
                raw = spark.read.parquet(uri)
                self.columns = list(raw.columns)
                check_source_names(contract, self.columns, name)
                raw = raw.select(*[_c(c).cast("string").alias(c) for c in self.columns])
        except InvalidInputError:
            raise
        except Exception as exc:
            if "AnalysisException" in type(exc).__name__ or "Py4J" in type(exc).__name__:
                reason = core.first_line(exc)
                raise InvalidInputError(f"{name}: cannot be read as {spec.type}: {reason}") from exc
            raise
        formats.check_unique_columns(self.columns, name)
        try:
            self.frame = self._number(raw, has_corrupt=detected.kind == "csv", name=name, header=spec.header)
        except Exception as exc:
            # Objects not pre-scanned (remote): the CSV parser's own bounds (see _csv) stop a huge line.
            if "TextParsingException" in str(exc) or "TextParsingException" in type(exc).__name__:
                raise InputLimitError(
                    f"{name}: a line exceeds format.max_fields ({spec.max_fields}) or "
                    f"format.max_line_bytes ({spec.max_line_bytes}): {core.first_line(exc)[:300]}"
                ) from None
            raise

    def _csv(self, uri: str, spec: FormatSpec, contract: Contract, name: str) -> tuple[DataFrame, list[str]]:
        if spec.header:
            columns = _header(self.spark, uri, spec, name)
        else:
            columns = [c.source_name for c in contract.columns]
        check_source_names(contract, columns, name)
        markers = list(spec.null_markers)
        # Spark reads one null marker; the others are mapped to NULL below. (An empty unquoted field is
        # always NULL in Spark, even when "" is not a marker.)
        null_value = "" if "" in markers or not markers else markers[0]
        # Field names follow the header when Spark's header check would accept them (no warning);
        # positional names otherwise (duplicates are reported below with the header's own names).
        folded = [c.lower() for c in columns]
        unique = len(set(folded)) == len(folded) and all(columns) and CORRUPT not in folded
        names = list(columns) if unique and spec.header else [f"c{i}" for i in range(len(columns))]
        schema = StructType([StructField(n, StringType()) for n in names])
        schema = schema.add(StructField(CORRUPT, StringType()))
        frame = (
            self.spark.read.options(
                header="true" if spec.header else "false",
                sep=spec.delimiter,
                quote=spec.quote,
                escape=spec.escape or spec.quote,
                nullValue=null_value,
                encoding="UTF-8",
                mode="PERMISSIVE",
                columnNameOfCorruptRecord=CORRUPT,
                # Quoted fields may span lines, as DuckDB reads them; it makes one split per file.
                multiLine="true",
                enforceSchema="true",
                ignoreLeadingWhiteSpace="false",
                ignoreTrailingWhiteSpace="false",
                # The contract's limits, enforced by the parser itself too: remote objects are not
                # pre-scanned (the preflight checks local files before Spark reads them).
                maxColumns=str(max(spec.max_fields, len(names)) + 1),
                maxCharsPerColumn=str(spec.max_line_bytes),
            )
            .schema(schema)
            .csv(uri)
        )
        others = [m for m in markers if m != null_value]
        fields = []
        for column_name, field_name in zip(columns, names, strict=True):
            value = _c(field_name)
            if others:
                value = F.when(value.isin(others), F.lit(None).cast("string")).otherwise(value)
            fields.append(value.alias(column_name))
        return frame.select(*fields, F.col(CORRUPT)), columns

    def _jsonl(self, uri: str, name: str) -> tuple[DataFrame, list[str]]:
        frame = self.spark.read.options(
            primitivesAsString="true", mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT, multiLine="false"
        ).json(uri)
        frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        if CORRUPT in frame.columns:
            bad = frame.where(F.col(CORRUPT).isNotNull()).limit(1).collect()
            if bad:
                raise InvalidInputError(
                    f"{name}: cannot be read as jsonl: malformed JSON: {str(bad[0][CORRUPT])[:200]!r}"
                )
        columns = sorted(c for c in frame.columns if c != CORRUPT)
        if not columns:
            raise InvalidInputError(f"{name}: no JSON objects with fields")
        check_source_names(self.contract, columns, name)
        types = {f.name: f.dataType for f in frame.schema.fields}
        fields = []
        for column in columns:
            value = _c(column)
            if not isinstance(types[column], StringType):
                value = F.to_json(value)  # nested objects and arrays stay JSON text
            fields.append(value.alias(column))
        return frame.select(*fields), columns

    def _number(self, raw: DataFrame, *, has_corrupt: bool, name: str, header: bool) -> DataFrame:
        """Add `_row` (1-based, file order, malformed lines not counted) without a global sort.

        monotonically_increasing_id() is (partition << 33) + position; per-partition counts give each
        partition's offset, so only a tiny aggregate is collected.
        """
        frame = raw.withColumn(_MID, F.monotonically_increasing_id()).persist(StorageLevel.MEMORY_AND_DISK)
        self._persisted = frame
        pid = F.shiftright(F.col(_MID), 33)
        good: Column = F.col(CORRUPT).isNull() if has_corrupt else F.lit(True)
        counts = (
            frame.groupBy(pid.alias("pid"))
            .agg(F.count(F.lit(1)).alias("n_all"), F.sum(F.when(good, 1).otherwise(0)).alias("n_good"))
            .collect()
        )
        all_offsets, good_offsets = {}, {}
        total_all = total_good = 0
        for row in sorted(counts, key=lambda r: int(r["pid"])):
            all_offsets[int(row["pid"])] = total_all
            good_offsets[int(row["pid"])] = total_good
            total_all += int(row["n_all"])
            total_good += int(row["n_good"])

        def offset(table: dict[int, int]) -> Column:
            if not table:
                return F.lit(0).cast("bigint")
            pairs = [F.lit(x) for k, v in table.items() for x in (k, v)]
            return F.element_at(F.create_map(*pairs), pid)

        position = F.col(_MID) - F.shiftleft(pid, 33)  # 0-based within the partition, all records
        data_cols = [c for c in frame.columns if c not in (CORRUPT, _MID)]
        if has_corrupt and total_all != total_good:
            line = offset(all_offsets) + position + (2 if header else 1)
            bad = frame.where(~good).select(line.alias("line"), F.col(CORRUPT).alias("raw")).orderBy("line")
            self.malformed = [
                (
                    int(r["line"]),
                    _malformed_reason(str(r["raw"] or ""), len(data_cols), self._delimiter),
                    str(r["raw"] or ""),
                )
                for r in bad.collect()
            ]
            ordinal = offset(good_offsets) + F.row_number().over(Window.partitionBy(pid).orderBy(_MID))
            clean = frame.where(good)
        else:
            ordinal = offset(good_offsets) + position + 1
            clean = frame
        return clean.select(*[_c(c) for c in data_cols], ordinal.cast("bigint").alias(ROW_ORDINAL))

    def unpersist(self) -> None:
        if self._persisted is not None:
            self._persisted.unpersist()


def _malformed_reason(raw: str, expected: int, delimiter: str) -> str:
    """Why a CSV line was set aside (field counts, as far as a plain split can tell)."""
    found = len(next(csv.reader([raw], delimiter=delimiter), []))
    if found != expected:
        return f"Expected Number of Columns: {expected} Found: {found}"
    return "unparseable CSV record (bad quoting)"


def spark_sql(select: exp.Expression) -> str:
    """A compiled tree rendered for Spark, with the renderings sqlglot gets wrong fixed."""
    return render(select, "spark")


def _commit_sql(plan: IngestPlan, absent: list[tuple[str, str]]) -> str:
    return spark_sql(commit_select(plan, absent))


def _require_rejects_access(staging: str, rejects_uri: str) -> None:
    """Local IAM: the S3 calls `_write_rejects` makes on S3 (docs/IAM.md). The overwrite-mode Parquet write
    checks and clears `staging` (HEAD = GetObject, LIST, DELETE), writes and commits its part (PUT, and a
    rename = GET + PUT + DELETE); then the part is renamed onto `rejects_uri` (HEAD/DELETE of an old one
    first) and the staging folder deleted."""
    access.require(staging + "/", "s3:ListBucket")
    access.require(staging + "/part-00000.snappy.parquet", "s3:GetObject", "s3:PutObject", "s3:DeleteObject")
    access.require(rejects_uri, "s3:GetObject", "s3:PutObject", "s3:DeleteObject")


def _write_rejects(spark: SparkSession, frame: DataFrame, rejects_uri: str) -> None:
    """One Parquet file at exactly `rejects_uri` (like the DuckDB engine), via a temporary folder."""
    staging = rejects_uri.rstrip("/") + ".staging"
    _require_rejects_access(staging, rejects_uri)
    frame.coalesce(1).write.mode("overwrite").parquet(staging)
    src_dir, fs = _hadoop_path(spark, staging)
    parts = [s.getPath() for s in fs.listStatus(src_dir) if s.getPath().getName().endswith(".parquet")]
    if len(parts) != 1:
        raise RuntimeError(f"expected one Parquet part in {staging}, found {len(parts)}")
    dst, dst_fs = _hadoop_path(spark, rejects_uri)
    if dst_fs.exists(dst):
        dst_fs.delete(dst, True)
    parent = dst.getParent()
    if parent is not None:
        dst_fs.mkdirs(parent)
    if not fs.rename(parts[0], dst):
        _jvm(spark).org.apache.hadoop.fs.FileUtil.copy(
            fs, parts[0], dst_fs, dst, False, True, spark._jsc.hadoopConfiguration()
        )
    fs.delete(src_dir, True)


def _commit(
    spark: SparkSession,
    contract: Contract,
    table_uri: str,
    commit: DataFrame,
    *,
    accepted: int,
    txn: core.Txn,
    merge_schema: bool,
    create: bool,
) -> int:
    """Write the rows under the app transaction; returns the rows written (inserted + updated)."""
    user_metadata = commit_metadata(txn.meta.run_id, [txn.app_id], txn.meta.source_uri)["userMetadata"]
    if contract.write_mode == "merge":
        return _merge(
            spark,
            contract,
            table_uri,
            commit,
            txn=txn,
            merge_schema=merge_schema,
            user_metadata=user_metadata,
        )
    writer = (
        commit.write.format("delta")
        .option("txnAppId", txn.app_id)
        .option("txnVersion", str(txn.version))
        .option("userMetadata", user_metadata)
    )
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    if contract.write_mode == "overwrite_partitions":
        rows = commit.select(*[_c(c) for c in contract.partition_by]).distinct().collect()
        predicate = core.partition_predicate(contract.partition_by, [tuple(r) for r in rows], "spark")
        writer.mode("overwrite").option("replaceWhere", predicate).save(table_uri)
    elif not create:
        writer.mode("append").save(table_uri)
    else:
        # A missing table is created by this very commit (version 0), as the DuckDB engine does,
        # so a file that fails leaves no empty table behind.
        if contract.partition_by:
            writer = writer.partitionBy(*contract.partition_by)
        with session_confs(spark, table_property_defaults()):
            writer.mode("append").save(table_uri)
    return accepted


def _merge(
    spark: SparkSession,
    contract: Contract,
    table_uri: str,
    commit: DataFrame,
    *,
    txn: core.Txn,
    merge_schema: bool,
    user_metadata: str,
) -> int:
    """MERGE on the primary key under the app transaction; rows inserted + updated."""
    view = "lakehouse_commit_source"
    commit.createOrReplaceTempView(view)
    on = core.merge_predicate(contract.primary_key, "spark")
    confs: dict[str, str] = {
        TXN_APP_ID_CONF: txn.app_id,
        TXN_VERSION_CONF: str(txn.version),
        "spark.databricks.delta.commitInfo.userMetadata": user_metadata,
    }
    if merge_schema:
        confs[AUTO_MERGE_CONF] = "true"
    try:
        with session_confs(spark, confs):
            metrics = spark.sql(
                f"MERGE INTO {delta_path(table_uri)} AS t USING {view} AS s ON {on} "
                "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
            ).collect()
    finally:
        spark.catalog.dropTempView(view)
    row = metrics[0].asDict() if metrics else {}
    return int(row.get("num_inserted_rows") or 0) + int(row.get("num_updated_rows") or 0)


def ingest_object(  # noqa: PLR0913 - the engine entry point; every option after `*` is keyword-only
    spark: SparkSession,
    path_or_uri: str | Path,
    contract: Contract,
    table_uri: str,
    meta: RunMeta,
    *,
    app_id: str,
    rejects_uri: str,
    source_name: str | None = None,
    scratch_uri: str | None = None,
    txn_version: int = FIRST_TXN_VERSION,
) -> dict[str, Any]:
    """Ingest one object (local path or any Hadoop URI, e.g. s3://) into the contract's table, exactly once.

    The flow is `lakehouse.ingest_core.ingest` (the same as `lakehouse.duckdb_engine.ingest.ingest_file`, same
    result keys); this engine is `SparkBackend`. Rejected rows go to one Parquet file at `rejects_uri`.
    """
    uri = str(path_or_uri)
    name = source_name or posixpath.basename(uri.rstrip("/"))
    backend = SparkBackend(spark, uri, table_uri, rejects_uri, scratch_uri)
    return core.ingest(backend, contract, meta, core.Txn(app_id, txn_version, meta), name).as_dict()


class SparkBackend:
    """The Glue engine: Spark reads and transforms, Delta Lake (JVM) commits."""

    def __init__(
        self, spark: SparkSession, uri: str, table_uri: str, rejects_uri: str, scratch_uri: str | None
    ) -> None:
        self.spark = spark
        self.uri = uri
        self.table_uri = table_uri
        self.rejects_uri = rejects_uri
        self.scratch_uri = scratch_uri
        self.version_before = -1
        self._source: _Source | None = None
        self._transformed: DataFrame | None = None

    @property
    def source(self) -> _Source:
        assert self._source is not None
        return self._source

    @property
    def transformed(self) -> DataFrame:
        assert self._transformed is not None
        return self._transformed

    def close(self) -> None:
        if self._source is not None:
            self._source.unpersist()
            for view in ("src", "transformed"):
                self.spark.catalog.dropTempView(view)

    # -- the table ---------------------------------------------------------------------------------

    def table_state(self, app_id: str) -> tuple[int, int | None]:
        self.version_before, applied = table_state(self.spark, self.table_uri, app_id)
        return self.version_before, applied

    def applied_history(self) -> tuple[list[dict[str, Any]], int]:
        from delta.tables import DeltaTable

        history = DeltaTable.forPath(self.spark, self.table_uri).history(SEARCH_DEPTH)
        rows = history.select("version", "userMetadata").collect()
        current, _ = table_state(self.spark, self.table_uri)
        return [row.asDict() for row in rows], current

    def table_columns(self) -> dict[str, str]:
        return table_columns(self.spark, self.table_uri)

    def create_table(self, plan: IngestPlan, contract: Contract) -> None:
        columns = [(c.name, c.type) for c in plan.columns]
        create_table(self.spark, self.table_uri, columns, list(contract.partition_by))

    # -- the object --------------------------------------------------------------------------------

    def detect(self, name: str) -> Detected:
        access.require(self.uri, "s3:GetObject")
        return detect_object(self.spark, self.uri, name)

    def open_source(self, contract: Contract, detected: Detected, name: str) -> list[str]:
        uri, rejects_uri = self.uri, self.rejects_uri
        scratch = self.scratch_uri or (
            tempfile.mkdtemp(prefix="lakehouse-spark-")
            if _is_local(uri)
            else rejects_uri.rstrip("/") + ".input"
        )
        readable = _readable_uri(self.spark, uri, detected, scratch)
        if readable != uri:
            # On S3 the copy sits next to the rejects (`<rejects_uri>.input/`) and Spark reads it back.
            copy = posixpath.join(rejects_uri.rstrip("/") + ".input", posixpath.basename(readable))
            access.require(copy, "s3:PutObject", "s3:GetObject")
        self._source = _Source(self.spark, readable, contract, detected, name)
        return self._source.columns

    def transform(self, plan: IngestPlan) -> None:
        self.source.frame.createOrReplaceTempView("src")
        self._transformed = self.spark.sql(spark_sql(plan.select))
        self._transformed.createOrReplaceTempView("transformed")

    def counts(self, plan: IngestPlan, name: str) -> core.Counts:
        action = F.col(REJECT_ACTION)
        row = self.transformed.agg(
            F.count(F.lit(1)).alias("total"),
            F.sum(F.when(action == "drop", 1).otherwise(0)).alias("dropped"),
            F.sum(F.when(action == "fail", 1).otherwise(0)).alias("failed"),
            F.sum(F.when(action == "quarantine", 1).otherwise(0)).alias("quarantined"),
        ).collect()[0]
        totals = {k: int(row[k] or 0) for k in ("total", "dropped", "failed", "quarantined")}
        return core.Counts(**totals, malformed=len(self.source.malformed))

    def first_failure(self) -> tuple[Any, Any]:
        first = (
            self.transformed.where(F.col(REJECT_ACTION) == "fail")
            .orderBy(ROW_ORDINAL)
            .select(ROW_ORDINAL, REJECT_REASON)
            .limit(1)
            .collect()[0]
        )
        return first[0], first[1]

    def write_rejects(self, plan: IngestPlan, counts: core.Counts) -> str | None:
        malformed = self.source.malformed
        if not (counts.quarantined or malformed):
            return None
        rejected_sql = spark_sql(rejected_rows(plan).where(f"{REJECT_ACTION} = 'quarantine'"))
        rejects = self.spark.sql(
            f"SELECT CAST({ROW_ORDINAL} AS BIGINT) AS source_row, CAST(NULL AS BIGINT) AS source_line, "
            f"{REJECT_REASON} AS reason, CAST(NULL AS STRING) AS raw_line FROM ({rejected_sql}) q"
        )
        if malformed:
            bad = self.spark.createDataFrame(
                [(None, line, f"{core.MALFORMED_PREFIX}{error}", raw) for line, error, raw in malformed],
                "source_row BIGINT, source_line BIGINT, reason STRING, raw_line STRING",
            )
            rejects = rejects.unionByName(bad)
        _write_rejects(self.spark, rejects.orderBy("source_row", "source_line"), self.rejects_uri)
        return self.rejects_uri

    # -- the commit --------------------------------------------------------------------------------

    def commit(
        self,
        plan: IngestPlan,
        absent: list[tuple[str, str]],
        merge_schema: bool,
        txn: core.Txn,
        counts: core.Counts,
    ) -> core.Committed | None:
        spark, table_uri = self.spark, self.table_uri
        commit = spark.sql(_commit_sql(plan, absent))
        _, applied = table_state(spark, table_uri, txn.app_id)
        if txn.applied_by(applied):
            return None
        create = self.version_before < 0
        written = _commit(
            spark,
            plan.contract,
            table_uri,
            commit,
            accepted=counts.accepted,
            txn=txn,
            merge_schema=merge_schema,
            create=create,
        )
        version_after, applied = table_state(spark, table_uri, txn.app_id)
        if applied != txn.version:
            return None
        return core.Committed(written or 0, version_after)
