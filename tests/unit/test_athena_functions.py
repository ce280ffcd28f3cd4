"""Athena functions analysts use, through `athena_to_duckdb`, against the equivalent DuckDB expression.

Each case is (Athena SQL, DuckDB SQL meaning the same); both run on DuckDB over the same rows and must
return the same values. Functions without a local equivalent fail naming the function and what to use.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from lakehouse.sql.dialects import UnsupportedFunctionError, athena_to_duckdb

ROWS = """
CREATE TABLE events AS SELECT * FROM (VALUES
  (1, TIMESTAMP '2024-03-05 14:07:09.250', '2024-03-05T14:07:09Z', 'a,b,c', ['x', 'y'], 'k1', 10),
  (2, TIMESTAMP '2023-12-31 00:00:01', '2023-12-31T23:59:59.5+02:00', 'solo', ['z'], 'k2', 20),
  (3, TIMESTAMP '2020-02-29 23:59:59', '2020-02-29T00:00:00-05:00', 'p,,q', [], 'k3', 35)
) AS t(id, ts, iso, csv, tags, k, n)
"""

CASES = [
    ("format_datetime(ts, 'yyyy-MM-dd HH:mm:ss')", "strftime(ts, '%Y-%m-%d %H:%M:%S')"),
    ("format_datetime(ts, 'EEEE d MMMM yy, h:mm a')", "strftime(ts, '%A %-d %B %y, %-I:%M %p')"),
    ("format_datetime(ts, 'yyyy''T''HH:mm:ss.SSS')", "strftime(ts, '%YT%H:%M:%S.%g')"),
    ("format_datetime(ts, 'D EEE MMM dd')", "strftime(ts, '%-j %a %b %d')"),
    ("date_format(ts, '%Y-%m-%d %H:%i:%s')", "strftime(ts, '%Y-%m-%d %H:%M:%S')"),
    ("date_format(ts, '%W %M %e %h %p %j')", "strftime(ts, '%A %B %-d %I %p %j')"),
    ("from_iso8601_timestamp(iso)", "CAST(iso AS TIMESTAMPTZ)"),
    ("to_unixtime(ts)", "epoch(ts)"),
    ("to_unixtime(from_iso8601_timestamp(iso))", "epoch(CAST(iso AS TIMESTAMPTZ))"),
    ("array_join(tags, '-')", "array_to_string(tags, '-')"),
    ("array_join(split(csv, ','), '|')", "array_to_string(string_split(csv, ','), '|')"),
    ("element_at(map(ARRAY['a', 'b'], ARRAY[n, id]), 'b')", "map(['a', 'b'], [n, id])['b']"),
    ("map(ARRAY['a', 'b'], ARRAY[n, id])['a']", "map(['a', 'b'], [n, id])['a']"),
    ("map_keys(map(ARRAY[k], ARRAY[n]))", "map_keys(map([k], [n]))"),
    ("map_values(map(ARRAY[k], ARRAY[n]))", "map_values(map([k], [n]))"),
    ("cardinality(map(ARRAY['a', 'b'], ARRAY[n, id]))", "cardinality(map(['a', 'b'], [n, id]))"),
    ("cardinality(tags)", "len(tags)"),
    (
        "try(CAST(CASE WHEN id = 2 THEN csv ELSE CAST(n AS varchar) END AS integer))",
        "TRY_CAST(CASE WHEN id = 2 THEN csv ELSE CAST(n AS VARCHAR) END AS INTEGER)",
    ),
    ("try(CAST(n AS varchar))", "CAST(n AS VARCHAR)"),
    ("split_part(csv, ',', 2)", "list_extract(string_split(csv, ','), 2)"),
    ("split_part(csv, ',', 1)", "list_extract(string_split(csv, ','), 1)"),
    ("split_part(csv, ',', 3)", "list_extract(string_split(csv, ','), 3)"),
]

AGGREGATES = [
    ("approx_percentile(n, ARRAY[0.25, 0.75])", "approx_quantile(n, [0.25, 0.75])"),
    ("approx_percentile(n, 0.5)", "approx_quantile(n, 0.5)"),
    ("map_agg(k, n)", "map_from_entries(list(struct_pack(k := k, v := n)))"),
    ("cardinality(map_agg(k, n))", "count(DISTINCT k)"),
]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(ROWS)
    return connection


def _values(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    return [row[0] for row in con.sql(sql).fetchall()]


@pytest.mark.parametrize(("athena", "duck"), CASES, ids=[c[0] for c in CASES])
def test_scalar_function_matches_duckdb(con: duckdb.DuckDBPyConnection, athena: str, duck: str) -> None:
    ours = _values(con, athena_to_duckdb(f"SELECT {athena} AS v FROM events ORDER BY id"))
    reference = _values(con, f"SELECT {duck} AS v FROM events ORDER BY id")
    assert ours == reference
    assert any(v is not None for v in ours)


@pytest.mark.parametrize(("athena", "duck"), AGGREGATES, ids=[c[0] for c in AGGREGATES])
def test_aggregate_matches_duckdb(con: duckdb.DuckDBPyConnection, athena: str, duck: str) -> None:
    ours = _values(con, athena_to_duckdb(f"SELECT {athena} AS v FROM events"))
    assert ours == _values(con, f"SELECT {duck} AS v FROM events")


def test_trino_semantics_where_duckdb_differs(con: duckdb.DuckDBPyConnection) -> None:
    # split_part past the last field: NULL in Trino ('' in plain DuckDB); an empty field stays ''.
    ours = _values(con, athena_to_duckdb("SELECT split_part(csv, ',', 3) AS v FROM events ORDER BY id"))
    plain = _values(con, "SELECT split_part(csv, ',', 3) AS v FROM events ORDER BY id")
    assert ours == ["c", None, "q"]
    assert plain == ["c", "", "q"]
    assert _values(con, athena_to_duckdb("SELECT split_part('p,,q', ',', 2) AS v")) == [""]
    # approx_percentile with an array returns an array, not a double.
    [percentiles] = _values(
        con, athena_to_duckdb("SELECT approx_percentile(n, ARRAY[0.1, 0.9]) AS v FROM events")
    )
    assert isinstance(percentiles, list)
    assert len(percentiles) == 2


@pytest.mark.parametrize(
    ("athena", "names", "suggests"),
    [
        ("approx_set(n)", "approx_set", "approx_distinct"),
        ("with_timezone(ts, 'UTC')", "with_timezone", "AT TIME ZONE"),
        ("format_datetime(ts, 'ww')", "format_datetime", "date_format"),
        ("format_datetime(ts, csv)", "format_datetime", "date_format"),
        ("approx_percentile(n, id, 0.5)", "approx_percentile", "approx_percentile(x, p)"),
    ],
)
def test_unsupported_functions_name_the_function_and_the_alternative(
    athena: str, names: str, suggests: str
) -> None:
    with pytest.raises(UnsupportedFunctionError) as caught:
        athena_to_duckdb(f"SELECT {athena} FROM events")
    assert str(caught.value).startswith(names)
    assert suggests in str(caught.value)
