"""The Lambda path runs without pyarrow (it does not fit the zip next to deltalake + duckdb).

The test runs the engine and the stages in a fresh interpreter where importing pyarrow fails, so any
hidden dependency on it (a `to_pyarrow_*` call, a pyarrow-only code path in deltalake) shows up here
rather than in a deployed Lambda.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, os, shutil, sys
    from pathlib import Path

    class BlockPyarrow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "pyarrow" or name.startswith("pyarrow."):
                raise ImportError(f"{name} is not available in Lambda")
            return None

    sys.meta_path.insert(0, BlockPyarrow())
    home = Path(sys.argv[1])
    os.environ.update({"LAKEHOUSE_BACKEND": "local", "LAKEHOUSE_HOME": str(home),
                       "DATASETS_DIR": sys.argv[2], "POWERTOOLS_TRACE_DISABLED": "true"})

    from lakehouse.stages.ingest import commit_object, inspect_object, register_table, rollback_table
    from lakehouse.stages.maintenance import maintain_table, plan_maintenance
    from lakehouse.stages.runtime import get_runtime
    from lakehouse import tables

    rt = get_runtime()
    out = {}
    for dataset, name, body in [
        ("orders", "o1.csv", sys.argv[3]),
        ("orders", "o2.csv", sys.argv[4]),
    ]:
        key = f"{dataset}/{name}"
        landed = rt.adapters.objects.put_bytes("landing", key, body.encode())
        state = {"run_id": f"run-{name[:-4]}", "dataset": dataset, "bucket": "landing", "key": key,
                 "version_id": landed.version_id, "etag": landed.etag, "size": len(body)}
        state["inspection"] = inspect_object(rt, state)
        state["commit"] = commit_object(rt, state)
        out[name] = state["commit"]
    uri = rt.table_uri("orders")
    out["history"] = [h["operation"] for h in tables.history(uri)]
    out["catalog"] = register_table(rt, {"dataset": "orders"})
    out["rollback"] = rollback_table(rt, state)["restored"]
    out["maintain"] = maintain_table(rt, {"dataset": "orders"}) is not None
    out["plan"] = [t["dataset"] for t in plan_maintenance(rt, {})["tables"]]
    out["pyarrow_loaded"] = "pyarrow" in sys.modules
    print(json.dumps(out, default=str))
    """
)

HEADER = "o_orderkey,o_custkey,o_orderstatus,o_totalprice,o_orderdate," + (
    "o_orderpriority,o_clerk,o_shippriority,o_comment"
)


def test_engine_and_stages_run_with_pyarrow_blocked(tmp_path: Path) -> None:
    first = "\n".join(
        [
            HEADER,
            "1,10,O,100.50,2026-01-02,1-URGENT,Clerk#000000001,0,a",
            "2,11,F,5.00,2026-01-03,2-HIGH,Clerk#000000002,0,b",
        ]
    )
    second = "\n".join(
        [
            HEADER,
            "2,11,P,7.25,2026-01-03,2-HIGH,Clerk#000000002,0,b2",
            "3,12,O,1.00,2026-01-04,3-MEDIUM,Clerk#000000003,0,c",
        ]
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(tmp_path / "home"),
            str(ROOT / "datasets"),
            first + "\n",
            second + "\n",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        # Lambda has no writable HOME either.
        env={k: v for k, v in os.environ.items() if k != "HOME"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["pyarrow_loaded"] is False
    assert out["o1.csv"]["status"] == "committed"
    assert out["o1.csv"]["rows_written"] == 2
    assert out["o2.csv"]["rows_written"] == 2  # one update (key 2) + one insert (key 3)
    assert "MERGE" in out["history"]
    assert out["catalog"]["table"] == "orders"
    assert out["rollback"] is True
    assert out["maintain"] is True
    assert out["plan"] == ["orders"]
