"""Glue 5.0 job `TransformWithGlue`: ingest one large object with Spark + Delta, exactly once.

Arguments: --run_input (the state as JSON), and optionally --datasets_dir (else $DATASETS_DIR), --lake_bucket,
--quarantine_bucket, --result_uri, --rejects_uri, --source_uri (local runs: the object's local path).
Without --source_uri the job reads a server-side copy of exactly the event's object version, staged at
s3://<lake>/runs/<run_id>/source/<file> (Spark cannot pin a version itself; see docs/ARCHITECTURE.md).
Writes the commit result to s3://<lake>/runs/<run_id>/commit.json (or --result_uri).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

OPTIONAL = ("datasets_dir", "lake_bucket", "quarantine_bucket", "result_uri", "rejects_uri", "source_uri")


def parse_args(argv: list[str]) -> dict[str, Any]:
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:  # not on Glue: plain argparse, so the same script runs locally
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--run_input", required=True)
        for name in OPTIONAL:
            parser.add_argument(f"--{name}")
        return {**vars(parser.parse_known_args(argv[1:])[0]), "on_glue": False}
    present = [name for name in OPTIONAL if f"--{name}" in argv]
    return {**dict.fromkeys(OPTIONAL), **getResolvedOptions(argv, ["run_input", *present]), "on_glue": True}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from lakehouse.spark.runs import ingest_run
    from lakehouse.spark.session import get_spark

    args = parse_args(sys.argv if argv is None else argv)
    spark = get_spark("lakehouse-ingest-large-object", local=not args["on_glue"])
    return ingest_run(
        spark,
        json.loads(args["run_input"]),
        datasets_dir=args["datasets_dir"] or os.environ.get("DATASETS_DIR", "datasets"),
        result_uri=args["result_uri"],
        rejects_uri=args["rejects_uri"],
        source_uri=args["source_uri"],
        lake_bucket=args["lake_bucket"] or os.environ.get("LAKE_BUCKET"),
        quarantine_bucket=args["quarantine_bucket"] or os.environ.get("QUARANTINE_BUCKET"),
    )


if __name__ == "__main__":
    print(json.dumps(main(), sort_keys=True))
