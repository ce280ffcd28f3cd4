"""EMR Serverless job `RefreshDerived`: rebuild a dataset's derived (gold) Delta tables with Spark SQL.

Arguments: --dataset, --lake_root (s3://<lake> or a local folder), --datasets_dir (else $DATASETS_DIR),
--models (comma-separated; default all), --local (build a local Spark session instead of EMR's).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--lake_root", required=True)
    parser.add_argument("--datasets_dir", default=os.environ.get("DATASETS_DIR", "datasets"))
    parser.add_argument("--models", default=None)
    parser.add_argument("--local", action="store_true")
    args = parser.parse_args(argv)

    from lakehouse.contracts import ContractRegistry
    from lakehouse.spark.derived import refresh_derived
    from lakehouse.spark.session import get_spark

    contract = ContractRegistry.from_location(args.datasets_dir).get(args.dataset)
    spark = get_spark("lakehouse-refresh-derived", local=args.local)
    models = args.models.split(",") if args.models else None
    return refresh_derived(spark, contract, args.lake_root, models=models)


if __name__ == "__main__":
    print(json.dumps(main(), sort_keys=True))
