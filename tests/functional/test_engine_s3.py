"""The engine against S3 tables (moto server in a separate process): TPC-H, merges, duplicates, vectors."""

from __future__ import annotations

import csv
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from deltalake import DeltaTable
from engine_helpers import assert_rows_equal, ingest, load_vector, read_rows

from lakehouse.adapters.aws import S3ObjectStore
from lakehouse.contracts import load_contract

pytestmark = [pytest.mark.s3, pytest.mark.xdist_group("moto_s3")]

REPO = Path(__file__).resolve().parents[2]
TPCHGEN = Path(sys.executable).parent / "tpchgen-cli"


@pytest.fixture
def lake(s3_env: object) -> tuple[S3ObjectStore, str, dict[str, str]]:
    env = s3_env
    store = S3ObjectStore(env.region, env.endpoint_url)  # type: ignore[attr-defined]
    return store, env.buckets["lake"], store.storage_options()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def tpch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tpch-s3")
    for table in ("orders", "lineitem"):
        subprocess.run([str(TPCHGEN), "csv", "-s", "0.01", "-T", table, "-o", str(out)], check=True)
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_tpch_into_s3_with_duplicate_detection(
    tpch: Path, tmp_path: Path, lake: tuple[S3ObjectStore, str, dict[str, str]]
) -> None:
    store, bucket, options = lake
    for dataset in ("orders", "lineitem"):
        contract = load_contract(REPO / "datasets" / f"{dataset}.yaml")
        source = tpch / f"{dataset}.csv"
        lines = _rows(source)
        uri = store.uri(bucket, f"tables/{dataset}")
        assert uri.startswith("s3://")

        result = ingest(source, contract, uri, tmp_path / f"w-{dataset}", storage_options=options)
        assert (result.status, result.rows_written, result.rows_rejected) == ("committed", len(lines), 0)

        rows = read_rows(uri, options)
        assert len(rows) == len(lines)
        price = "o_totalprice" if dataset == "orders" else "l_extendedprice"
        assert sum(r[price] for r in rows) == sum(Decimal(r[price]) for r in lines)

        again = ingest(
            source, contract, uri, tmp_path / f"w2-{dataset}", storage_options=options, run_id="r2"
        )
        assert again.status == "duplicate"
        assert again.version_after == result.version_after
        assert DeltaTable(uri, storage_options=options).version() == result.version_after
        assert len(read_rows(uri, options)) == len(lines)

    keys = list(store.list(bucket, "tables/lineitem/"))
    assert any(k.startswith("tables/lineitem/l_shipmode=") for k in keys)
    assert any(k.startswith("tables/lineitem/_delta_log/") for k in keys)


def test_merge_update_on_s3(tmp_path: Path, lake: tuple[S3ObjectStore, str, dict[str, str]]) -> None:
    store, bucket, options = lake
    vector = load_vector("merge_duplicate_keys")
    uri = store.uri(bucket, f"tables/{vector.contract.name}")
    first = ingest(vector.input, vector.contract, uri, tmp_path / "w1", storage_options=options)
    assert (first.status, first.rows_written) == ("committed", 3)
    assert_rows_equal(read_rows(uri, options), vector.expected)

    update = tmp_path / "update.csv"
    update.write_text("id,name,price\n2,b9,9.99\n4,d,4.00\n")
    second = ingest(update, vector.contract, uri, tmp_path / "w2", storage_options=options)
    assert (second.status, second.rows_written) == ("committed", 2)
    got = {r["id"]: (r["name"], str(r["price"])) for r in read_rows(uri, options)}
    assert got == {1: ("a3", "1.75"), 2: ("b9", "9.99"), 3: ("c", "3.00"), 4: ("d", "4.00")}


@pytest.mark.parametrize("name", ["casts_all_types", "evolution_rescue", "gzip_csv", "parquet_input"])
def test_vectors_on_s3(name: str, tmp_path: Path, lake: tuple[S3ObjectStore, str, dict[str, str]]) -> None:
    store, bucket, options = lake
    vector = load_vector(name)
    uri = store.uri(bucket, f"tables/{vector.contract.name}")
    result = ingest(vector.input, vector.contract, uri, tmp_path / "w", storage_options=options)
    assert result.rows_written == vector.expected["rows_written"]
    assert_rows_equal(read_rows(uri, options), vector.expected)
