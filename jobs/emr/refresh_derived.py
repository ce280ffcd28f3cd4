"""EMR Serverless job `RefreshDerived`: rebuild a dataset's derived (gold) Delta tables with Spark SQL.

Arguments: --dataset, --lake_root (s3://<lake> or a local folder), --models_uri (the derived-models JSON
that scripts/upload_artifacts.sh writes to s3://<artifacts>/dist/derived_models.json), --models
(comma-separated; default all), --local (build a local Spark session instead of EMR's).

Runs on EMR's own Python 3.9 with pyspark and Delta: the lakehouse modules it needs come in
dist/lakehouse_emr.zip (--py-files), and nothing here needs PyYAML, pydantic or sqlglot.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--lake_root", required=True)
    parser.add_argument("--models_uri", required=True)
    parser.add_argument("--models", default=None)
    parser.add_argument("--local", action="store_true")
    args = parser.parse_args(argv)

    from lakehouse.spark.refresh import load_models, refresh_models
    from lakehouse.spark.session import get_spark

    spark = get_spark("lakehouse-refresh-derived", local=args.local)
    names = args.models.split(",") if args.models else None
    models = load_models(spark, args.models_uri, args.dataset, names)
    return refresh_models(spark, models, args.lake_root, args.dataset)


if __name__ == "__main__":
    print(json.dumps(main(), sort_keys=True))
