"""EMR Serverless job `MaintainWithEmr`: OPTIMIZE, VACUUM and checkpoint one large Delta table.

Arguments: --table_uri, --retention_hours (default 168), --local (a local Spark session instead of EMR's).
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table_uri", required=True)
    parser.add_argument("--retention_hours", type=int, default=168)
    parser.add_argument("--local", action="store_true")
    args = parser.parse_args(argv)

    from lakehouse.spark.maintain import maintain_table
    from lakehouse.spark.session import get_spark

    spark = get_spark("lakehouse-maintain-table", local=args.local)
    return maintain_table(spark, args.table_uri, args.retention_hours)


if __name__ == "__main__":
    print(json.dumps(main(), sort_keys=True))
