"""Derived (gold) models compiled for the Spark jobs: name, Spark SQL and the datasets each one reads.

`python -m lakehouse.sql.derived <datasets dir> > dist/derived_models.json` writes the document the
EMR Serverless job `RefreshDerived` reads (scripts/upload_artifacts.sh does it), so the job needs no
YAML parser, contract model or SQL parser on EMR.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from lakehouse.contracts import ContractRegistry
from lakehouse.contracts.model import Contract
from lakehouse.errors import ContractError

FORMAT_VERSION = 1


def referenced_tables(sql: str) -> list[str]:
    """The (unqualified) table names a model's SQL reads, CTE names excluded."""
    try:
        tree = sqlglot.parse_one(sql, read="spark")
    except sqlglot.errors.ParseError as exc:
        raise ContractError(f"derived SQL does not parse as Spark SQL: {exc}") from exc
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return sorted({t.name for t in tree.find_all(exp.Table) if t.name not in ctes})


def model_specs(contract: Contract, models: list[str] | None = None) -> list[dict[str, Any]]:
    """`[{name, sql, sources}]` of the contract's derived models (or the named ones)."""
    return [
        {"name": m.name, "sql": m.sql, "sources": referenced_tables(m.sql)}
        for m in contract.derived
        if models is None or m.name in models
    ]


def derived_document(registry: ContractRegistry) -> dict[str, Any]:
    """Every dataset's derived models, as the EMR job reads them."""
    datasets = {name: model_specs(registry.get(name)) for name in registry.names()}
    return {"format": FORMAT_VERSION, "datasets": {k: v for k, v in datasets.items() if v}}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    location = args[0] if args else "datasets"
    document = derived_document(ContractRegistry.from_location(Path(location)))
    print(json.dumps(document, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
