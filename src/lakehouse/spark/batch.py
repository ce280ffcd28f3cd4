"""A Glue batch into one Delta transaction (docs/ARCHITECTURE.md, "The Glue route").

Each object of the batch runs the one ingest flow (`lakehouse.ingest_core.ingest`) against the table's
state, as a single object would: duplicate check, schema checks, row rules, counts and rejects. Its
accepted rows stay a (lazy, cached) DataFrame instead of being committed. When every object has passed,
`commit_staged` writes all their rows in ONE Delta commit that carries one app transaction
(`SetTransaction`) per object version. Spark's writer sets at most one app transaction per commit, so the
commit is made on a Delta `OptimisticTransaction` of our own (through the JVM): `WriteIntoDelta.write`
produces the files (table creation, schema merge and `replaceWhere` included), the set transactions are
added, and `commit` writes the one log entry. Semantics are the DuckDB batch's
(`lakehouse.duckdb_engine.batch`): merge keeps the last object's row per key, a partition overwrite takes
each partition from the last object that has it.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any
from urllib.parse import unquote

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812
from pyspark.sql.window import Window

from lakehouse import ingest_core as core
from lakehouse.commit_log import commit_metadata
from lakehouse.contracts.model import Contract
from lakehouse.spark.delta_tables import _jvm, delta_log, session_confs, table_property_defaults, table_state
from lakehouse.spark.ingest import SparkBackend, _c, _commit_sql, quoted
from lakehouse.sql.compiler import IngestPlan

_SEQ = "__lakehouse_batch_seq"
_FILE = "__lakehouse_batch_file"
_KEEP = "__lakehouse_batch_keep"


class StagingSparkBackend(SparkBackend):
    """The Spark engine's steps, keeping an object's accepted rows as a DataFrame instead of committing.

    The source stays cached until the batch has committed (`release`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.staged: DataFrame | None = None
        self.merge_schema = False

    def create_table(self, plan: IngestPlan, contract: Contract) -> None:
        """Nothing yet: the batch's one commit creates the table."""

    def commit(
        self,
        plan: IngestPlan,
        absent: list[tuple[str, str]],
        merge_schema: bool,
        txn: core.Txn,
        counts: core.Counts,
    ) -> core.Committed | None:
        self.merge_schema = merge_schema
        self.staged = self.spark.sql(_commit_sql(plan, absent))
        return core.Committed(counts.accepted, -1)

    def close(self) -> None:
        """Kept open: the staged rows are read by the batch's commit."""

    def release(self) -> None:
        super().close()


@dataclass
class StagedObject:
    """One object after its own ingest flow: rows to commit, or already in the table."""

    object_id: str
    result: core.IngestResult
    txn: core.Txn
    backend: StagingSparkBackend

    @property
    def frame(self) -> DataFrame | None:
        staged = self.result.status == "committed" and not self.result.resumed
        return self.backend.staged if staged else None


def commit_staged(
    spark: SparkSession, contract: Contract, table_uri: str, run_id: str, staged: Sequence[StagedObject]
) -> tuple[int, int, int] | None:
    """Commit every staged object's rows in one commit with all their app transactions.

    (version before, version after, rows written), or None when nothing was staged (every object was
    already in the table: resumed or duplicate)."""
    todo = [s for s in staged if s.frame is not None]
    if not todo:
        return None
    before, _ = table_state(spark, table_uri)
    frames = [s.frame.withColumn(_SEQ, F.lit(n)) for n, s in enumerate(todo) if s.frame is not None]
    union = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
    rows = _last_wins(union, contract).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        written = (
            sum(s.result.rows_written for s in todo) if contract.write_mode == "append" else rows.count()
        )
        app_ids = [s.txn.app_id for s in todo]
        user_metadata = commit_metadata(run_id, app_ids, f"batch of {len(todo)}")["userMetadata"]
        after = _commit(
            spark,
            contract,
            table_uri,
            rows,
            create=before < 0,
            merge_schema=any(s.backend.merge_schema for s in todo),
            txns=[(s.txn.app_id, s.txn.version) for s in todo],
            user_metadata=user_metadata,
        )
    finally:
        rows.unpersist()
    return before, after, written


def _last_wins(union: DataFrame, contract: Contract) -> DataFrame:
    """Merge: the last object's row per key; partition overwrite: each partition from its last object."""
    seq = F.col(_SEQ)
    if contract.write_mode == "merge":
        order = Window.partitionBy(*[_c(k) for k in contract.primary_key]).orderBy(seq.desc())
        union = union.withColumn(_KEEP, F.row_number().over(order) == 1)
    elif contract.write_mode == "overwrite_partitions":
        parts = Window.partitionBy(*[_c(k) for k in contract.partition_by])
        union = union.withColumn(_KEEP, seq == F.max(seq).over(parts))
    else:
        return union.drop(_SEQ)
    return union.where(F.col(_KEEP)).drop(_SEQ, _KEEP)


def _commit(
    spark: SparkSession,
    contract: Contract,
    table_uri: str,
    rows: DataFrame,
    *,
    create: bool,
    merge_schema: bool,
    txns: list[tuple[str, int]],
    user_metadata: str,
) -> int:
    """One Delta commit of `rows` (write mode of the contract) with every app transaction; its version."""
    jvm = _jvm(spark)
    log = delta_log(spark, table_uri)
    txn = log.startTransaction()
    options = {"userMetadata": user_metadata}
    if merge_schema:
        options["mergeSchema"] = "true"
    mode, data, removes = "Append", rows, list[Any]()
    if not create and contract.write_mode == "overwrite_partitions":
        values = rows.select(*[_c(c) for c in contract.partition_by]).distinct().collect()
        options["replaceWhere"] = core.partition_predicate(
            contract.partition_by, [tuple(r) for r in values], "spark"
        )
        mode = "Overwrite"
    elif not create and contract.write_mode == "merge":
        data, removes = _merge_rewrite(spark, txn, table_uri, rows, contract)
    save_mode = jvm.org.apache.spark.sql.SaveMode.valueOf(mode)
    jspark = spark._jsparkSession
    delta = jvm.org.apache.spark.sql.delta
    write = delta.commands.WriteIntoDelta(
        log,
        save_mode,
        delta.DeltaOptions(_scala_map(jvm, options), jspark.sessionState().conf()),
        _seq(jvm, list(contract.partition_by) if create else []),
        _scala_map(jvm, {}),
        data._jdf,
        jvm.scala.Option.apply(None),
        jvm.scala.Option.apply(None),
    )
    with session_confs(spark, table_property_defaults() if create else {}):
        actions = write.write(txn, jspark, getattr(write, "write$default$3")(), False)
    every = jvm.java.util.ArrayList()
    every.addAll(jvm.scala.collection.JavaConverters.seqAsJavaListConverter(actions).asJava())
    for remove in removes:
        every.add(remove)
    now = jvm.scala.Option.apply(jvm.java.lang.Long.valueOf(int(time.time() * 1000)))
    for app_id, version in txns:
        every.add(delta.actions.SetTransaction(app_id, version, now))
    operation = getattr(delta, "DeltaOperations$Write")(
        save_mode,
        jvm.scala.Option.apply(_seq(jvm, list(contract.partition_by))),
        jvm.scala.Option.apply(options.get("replaceWhere")),
        jvm.scala.Option.apply(user_metadata),
    )
    return int(txn.commit(_seq(jvm, every), operation))


def _merge_rewrite(
    spark: SparkSession, txn: Any, table_uri: str, rows: DataFrame, contract: Contract
) -> tuple[DataFrame, list[Any]]:
    """MERGE (update every column when matched, insert when not) as a rewrite in our own transaction:
    the table's files holding a key of `rows` are removed, and rewritten without those keys, with `rows`.
    (The rows carry one row per key already.) Returns (rows to write, RemoveFile actions)."""
    keys = list(contract.primary_key)
    target = spark.read.format("delta").load(table_uri)
    target = target.select("*", F.col("_metadata.file_name").alias(_FILE)).alias("t")
    source_keys = rows.select(*[_c(k) for k in keys]).distinct().alias("s")
    on = reduce(lambda a, b: a & b, [F.col(f"t.{quoted(k)}") == F.col(f"s.{quoted(k)}") for k in keys])
    touched = {
        str(r[0]) for r in target.join(source_keys, on, "left_semi").select(_FILE).distinct().collect()
    }
    if not touched:
        return rows, []
    kept = target.where(F.col(_FILE).isin(sorted(touched))).join(source_keys, on, "left_anti").drop(_FILE)
    files = txn.filterFiles()
    removes = []
    for n in range(files.length()):
        add = files.apply(n)
        if unquote(posixpath.basename(str(add.path()))) in touched:
            removes.append(add.remove())
    return kept.unionByName(rows, allowMissingColumns=True), removes


def _seq(jvm: Any, items: Any) -> Any:
    """A Scala Seq of a Python list (or a java.util.List)."""
    if isinstance(items, list):
        java = jvm.java.util.ArrayList()
        for item in items:
            java.add(item)
        items = java
    return jvm.scala.collection.JavaConverters.asScalaBufferConverter(items).asScala().toList()


def _scala_map(jvm: Any, items: dict[str, str]) -> Any:
    java = jvm.java.util.HashMap()
    for key, value in items.items():
        java.put(key, value)
    return jvm.org.apache.spark.api.python.PythonUtils.toScalaMap(java)
