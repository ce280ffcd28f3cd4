"""Glue 5.0 job `TransformWithGlue`: commit the large objects of a manifest with Spark + Delta, exactly once.

Arguments: --manifest_uri (s3://<lake>/runs/<run_id>/manifest.json, written by Inspect: each object's
bucket, key, version pin, object id, app id and transaction version; StartJobRun's arguments are
size-limited, so the objects travel in the manifest, not here), --run_id (checked against the manifest),
and optionally --datasets_dir (else $DATASETS_DIR), --lake_bucket, --quarantine_bucket, --result_uri,
and for local runs --source_uris / --rejects_uris (JSON {object_id: path}).
Without a source URI the job reads a server-side copy of exactly each object's version, staged at
s3://<lake>/runs/<run_id>/source/<object_id>/<file> (Spark cannot pin a version itself; see
docs/ARCHITECTURE.md). All objects are committed in one Delta transaction with one app transaction each.
Writes the commit result to s3://<lake>/runs/<run_id>/commit.json (or --result_uri).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

OPTIONAL = (
    "run_id",
    "datasets_dir",
    "lake_bucket",
    "quarantine_bucket",
    "result_uri",
    "source_uris",
    "rejects_uris",
)


def parse_args(argv: list[str]) -> dict[str, Any]:
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:  # not on Glue: plain argparse, so the same script runs locally
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--manifest_uri", required=True)
        for name in OPTIONAL:
            parser.add_argument(f"--{name}")
        return {**vars(parser.parse_known_args(argv[1:])[0]), "on_glue": False}
    present = [name for name in OPTIONAL if f"--{name}" in argv]
    return {
        **dict.fromkeys(OPTIONAL),
        **getResolvedOptions(argv, ["manifest_uri", *present]),
        "on_glue": True,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from lakehouse.spark.runs import ingest_manifest
    from lakehouse.spark.session import get_spark

    args = parse_args(sys.argv if argv is None else argv)
    spark = get_spark("lakehouse-ingest-large-object", local=not args["on_glue"])
    return ingest_manifest(
        spark,
        args["manifest_uri"],
        run_id=args["run_id"],
        datasets_dir=args["datasets_dir"] or os.environ.get("DATASETS_DIR", "datasets"),
        result_uri=args["result_uri"],
        lake_bucket=args["lake_bucket"] or os.environ.get("LAKE_BUCKET"),
        quarantine_bucket=args["quarantine_bucket"] or os.environ.get("QUARANTINE_BUCKET"),
        source_uris=json.loads(args["source_uris"]) if args["source_uris"] else None,
        rejects_uris=json.loads(args["rejects_uris"]) if args["rejects_uris"] else None,
    )


if __name__ == "__main__":
    print(json.dumps(main(), sort_keys=True))
