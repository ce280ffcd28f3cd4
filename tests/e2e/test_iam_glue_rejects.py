"""The Glue route under local IAM enforcement: a file with rejected rows commits, its rejects land.

The Spark engine writes rejects through a staging folder next to `rows/<dataset>/<run>/rejects.parquet`
(overwrite, list, rename, delete), so GlueJobRole needs s3:GetObject and s3:DeleteObject there, not only
s3:PutObject. With a role that lacks them the job fails with AccessDenied, as it would in AWS.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_helpers import DATASETS, ROOT, write_orders

from lakehouse.local.executor import LocalOptions, LocalPipeline
from lakehouse.local.jobs import spark_status


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.e2e
@pytest.mark.xdist_group("spark")
def test_glue_route_file_with_rejects_commits_under_enforcement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, detail = spark_status()
    if not ok:
        pytest.skip(f"local Spark unavailable: {detail}")
    monkeypatch.setenv("LAKEHOUSE_IAM", "on")
    monkeypatch.setenv("LAKEHOUSE_PROJECT_ROOT", str(ROOT))
    source = write_orders(tmp_path / "orders_glue.csv", 1, 20)
    lines = source.read_text().splitlines()
    fields = lines[3].split(",")
    fields[2] = "Z"  # o_orderstatus outside [F, O, P]: the row is quarantined
    lines[3] = ",".join(fields)
    source.write_text("\n".join(lines) + "\n")

    pipeline = LocalPipeline(
        LocalOptions(
            home=tmp_path / "home",
            datasets_dir=DATASETS,
            project_root=ROOT,
            spark=True,
            lambda_route_max_bytes=1,  # every file takes the Glue route
            reports=False,
        )
    )
    key = pipeline.land_file(source, "orders")
    started = pipeline.submit(key)
    assert started is not None
    [record] = pipeline.drain()

    assert record.status == "SUCCEEDED", record.data.get("error")
    assert record.data["route"] == "glue"
    commit = record.data["commit"]
    assert commit["rows_written"] == 19
    assert commit["rows_rejected"] == 1
    rejects = (
        tmp_path / "home" / "buckets" / "quarantine" / "rows" / "orders" / record.run_id / "rejects.parquet"
    )
    assert rejects.is_file()
