"""`date_format` / `timestamp_format`: non-ISO dates parse per pattern; a mismatch is a type error."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb

from lakehouse.contracts import parse_contract
from lakehouse.sql.compiler import RunMeta, compile_ingest

CONTRACT = """
name: t
landing_prefix: t/
format: {type: csv, date_format: "%d/%m/%Y", timestamp_format: "%d/%m/%Y %H:%M"}
columns:
  - {name: d, type: date}
  - {name: ts, type: timestamp}
"""


def test_patterns_parse_and_mismatches_are_type_errors() -> None:
    contract = parse_contract(CONTRACT)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE VIEW src AS SELECT * FROM (VALUES ('31/12/2025', '01/02/2026 07:05', 1), "
        "('2025-12-31', '2026-02-01 07:05', 2)) v(d, ts, _row)"
    )
    plan = compile_ingest(contract, ["d", "ts", "_row"], RunMeta("s3://b/k", "v", datetime.now(UTC), "r"))
    rows = con.execute(
        "SELECT d, strftime(ts, '%Y-%m-%dT%H:%M:%S'), _reject_reason "
        f"FROM ({plan.sql('duckdb')}) ORDER BY _row"
    ).fetchall()
    assert rows[0] == (date(2025, 12, 31), "2026-02-01T07:05:00", None)
    assert rows[1][0] is None
    assert rows[1][1] is None
    assert "type:d: '2025-12-31' is not a valid date" in rows[1][2]
    assert "type:ts: '2026-02-01 07:05' is not a valid timestamp" in rows[1][2]


def test_patterns_render_for_spark_with_java_patterns() -> None:
    plan = compile_ingest(parse_contract(CONTRACT), ["d", "ts"], RunMeta("a", "b", datetime.now(UTC), "r"))
    spark = plan.sql("spark")
    assert "TO_DATE(src.`d`, 'd/M/yyyy')" in spark
    assert "TO_TIMESTAMP(src.`ts`, 'd/M/yyyy H:m')" in spark
