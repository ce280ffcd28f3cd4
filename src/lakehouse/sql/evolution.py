"""Schema-evolution policy, shared by every engine: what a file's header and the table allow."""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from lakehouse.contracts.model import Contract
from lakehouse.errors import SchemaMismatchError
from lakehouse.names import RESERVED_COLUMNS, reserved
from lakehouse.sql.compiler import IngestPlan, accepted_rows, ident, sql_type

# Characters Delta tables refuse in column names (without column mapping, which Athena cannot read).
DELTA_FORBIDDEN = " ,;{}()\n\t="


def check_source_names(contract: Contract, columns: Sequence[str], name: str) -> None:
    """The file's field names, before any engine reads the file with them.

    DuckDB and Spark compare names case-insensitively, so `ID` and `id` are the same column, and a
    field named like one of the engine's own columns (`_rejected`, `_row`, ...) would take its place.
    """
    clashes = reserved(columns)
    if clashes:
        raise SchemaMismatchError(
            f"{name}: the file's column(s) {clashes} collide with the engine's reserved columns "
            f"({', '.join(RESERVED_COLUMNS)}; compared case-insensitively); rename them in the file"
        )
    folded = [c.casefold() for c in columns]
    duplicates = sorted({c for c in columns if folded.count(c.casefold()) > 1})
    if duplicates:
        raise SchemaMismatchError(
            f"{name}: the header names these columns more than once (case-insensitively): {duplicates}"
        )
    sources = {c.source_name for c in contract.columns}
    if contract.schema_evolution == "add_columns":
        unfit = [c for c in columns if c not in sources and set(c) & set(DELTA_FORBIDDEN)]
        if unfit:
            raise SchemaMismatchError(
                f"{name}: the file's column(s) {unfit} cannot become Delta columns (schema_evolution: "
                f"add_columns): names may not contain any of {DELTA_FORBIDDEN!r}; rename them in the "
                "file, or map them to a contract column with `source:`"
            )
    targets = {c.name.casefold(): c.name for c in contract.columns}
    collide = [c for c in columns if c not in sources and c.casefold() in targets]
    if collide and contract.schema_evolution == "add_columns":
        pairs = ", ".join(f"{c!r} (contract column {targets[c.casefold()]!r})" for c in collide)
        raise SchemaMismatchError(
            f"{name}: the file's column(s) {pairs} would be added as new columns with the name of an "
            "existing column (names are compared case-insensitively)"
        )


def check_file_schema(plan: IngestPlan, name: str) -> None:
    """The file's columns against the contract, under its schema-evolution policy."""
    contract = plan.contract
    if contract.schema_evolution == "strict" and (plan.extra_columns or plan.missing_columns):
        parts = []
        if plan.missing_columns:
            parts.append(f"missing columns {plan.missing_columns}")
        if plan.extra_columns:
            parts.append(f"unexpected columns {plan.extra_columns}")
        hint = ""
        if len(plan.extra_columns) == 1 and len(plan.missing_columns) > 1:
            hint = f" (is the delimiter {contract.format.delimiter!r} right for this file?)"
        raise SchemaMismatchError(
            f"{name}: does not match the contract of {contract.name!r} (schema_evolution: strict): "
            + "; ".join(parts)
            + hint
        )
    required_missing = [c for c in plan.missing_columns if not contract.column(c).nullable]
    if required_missing:
        raise SchemaMismatchError(f"{name}: lacks required (non-nullable) columns {required_missing}")


def check_table_schema(
    plan: IngestPlan, existing: dict[str, str] | None, name: str
) -> tuple[bool, list[tuple[str, str]]]:
    """Whether the commit must merge the schema, and the table's columns the file does not carry.

    `existing` maps the table's columns to contract types (None: there is no table yet).
    """
    if existing is None:
        return False, []
    conflicts = [
        f"{c.name}: table has {existing[c.name]}, contract/file gives {c.type}"
        for c in plan.columns
        if c.name in existing and existing[c.name] != c.type
    ]
    if conflicts:
        raise SchemaMismatchError(
            f"{name}: column types differ from table {plan.contract.name!r}: " + "; ".join(conflicts)
        )
    new = [c.name for c in plan.columns if c.name not in existing]
    if new and plan.contract.schema_evolution == "strict":
        raise SchemaMismatchError(
            f"{name}: would add columns {new} to table {plan.contract.name!r}, but schema_evolution is strict"
        )
    planned = {c.name for c in plan.columns}
    absent = [(n, t) for n, t in existing.items() if n not in planned]
    return bool(new), absent


def commit_select(plan: IngestPlan, absent: list[tuple[str, str]]) -> exp.Select:
    """The accepted rows, with NULLs for table columns this file does not carry."""
    select = accepted_rows(plan)
    for column, type_name in absent:
        select = select.select(exp.alias_(exp.Cast(this=exp.Null(), to=sql_type(type_name)), ident(column)))
    return select
