"""The dataset contract: the one declaration every engine and check compiles from."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lakehouse.names import RESERVED_COLUMNS, reserved

_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
MAX_DECIMAL_PRECISION = 38  # Delta, Spark, DuckDB and Athena alike
SIMPLE_TYPES = ("string", "boolean", "int", "bigint", "double", "date", "timestamp")
IDENTIFIER = r"^[a-z_][a-z0-9_]*$"
DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_FIELDS = 10_000
DEFAULT_MAX_DECOMPRESSED_BYTES = 16 * 1024**3
DEFAULT_MAX_COMPRESSION_RATIO = 100.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FormatSpec(_Strict):
    """How to parse the landed file. Compression is always detected from magic bytes."""

    type: Literal["csv", "jsonl", "parquet"]
    delimiter: str = ","
    quote: str = '"'
    escape: str | None = None
    header: bool = True
    null_markers: tuple[str, ...] = ("",)
    encoding: Literal["utf-8"] = "utf-8"
    # Dates and timestamps that are not ISO-8601 (strptime patterns, DuckDB/Spark compatible subset).
    date_format: str | None = None
    timestamp_format: str | None = None
    # Limits checked while the file is streamed once, before DuckDB or Spark parse it
    # (lakehouse.formats.preflight). Text files only (CSV, JSON Lines).
    max_line_bytes: Annotated[int, Field(ge=1024)] = DEFAULT_MAX_LINE_BYTES
    max_fields: Annotated[int, Field(ge=1)] = DEFAULT_MAX_FIELDS
    max_decompressed_bytes: Annotated[int, Field(ge=1)] = DEFAULT_MAX_DECOMPRESSED_BYTES
    max_compression_ratio: Annotated[float, Field(gt=1)] = DEFAULT_MAX_COMPRESSION_RATIO


class Column(_Strict):
    """A target column and where it comes from."""

    name: Annotated[str, Field(pattern=IDENTIFIER)]
    source: str | None = None
    type: str
    nullable: bool = True
    description: str | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        value = value.strip().lower()
        if value in SIMPLE_TYPES:
            return value
        match = _DECIMAL.match(value)
        if (
            match
            and 0 < int(match.group(1)) <= MAX_DECIMAL_PRECISION
            and int(match.group(2)) <= int(match.group(1))
        ):
            return f"decimal({match.group(1)},{match.group(2)})"
        raise ValueError(f"unknown type {value!r}; expected one of {', '.join(SIMPLE_TYPES)} or decimal(p,s)")

    @property
    def source_name(self) -> str:
        return self.source or self.name


RowAction = Literal["drop", "quarantine", "fail"]


class RowRule(_Strict):
    """A predicate every row must satisfy; what happens to the rows that do not."""

    name: str | None = None
    rule: Literal["type", "not_null", "regex", "range", "in_set"]
    column: str | None = None  # `type` without a column applies to every column
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    values: tuple[str | int | float | bool, ...] | None = None
    action: RowAction = "quarantine"

    @model_validator(mode="after")
    def _arguments(self) -> RowRule:
        needs = {"regex": "pattern", "in_set": "values"}
        if self.rule != "type" and self.column is None:
            raise ValueError(f"rule {self.rule!r} needs a column")
        if self.rule in needs and getattr(self, needs[self.rule]) is None:
            raise ValueError(f"rule {self.rule!r} needs {needs[self.rule]!r}")
        if self.rule == "range" and self.min is None and self.max is None:
            raise ValueError("rule 'range' needs min or max")
        return self

    @property
    def label(self) -> str:
        return self.name or f"{self.rule}:{self.column or '*'}"


CheckType = Literal[
    "row_count",
    "completeness",
    "uniqueness",
    "values_in_set",
    "values_in_range",
    "values_match_regex",
    "freshness",
    "referential_integrity",
    "custom_sql",
]


class Reference(_Strict):
    dataset: str
    column: str


class TableCheck(_Strict):
    """One numeric metric over the table, compared to thresholds."""

    name: Annotated[str, Field(pattern=IDENTIFIER)]
    type: CheckType
    column: str | None = None
    columns: tuple[str, ...] | None = None
    values: tuple[str | int | float | bool, ...] | None = None
    pattern: str | None = None
    range_min: float | None = None
    range_max: float | None = None
    reference: Reference | None = None
    # custom_sql: Athena SQL returning one number; `{table}` is the checked rows (the batch's in batch
    # scope, the whole table in table scope), `{full_table}` the whole table in either scope.
    sql: str | None = None
    min: float | None = None
    max: float | None = None
    severity: Literal["warn", "fail"] = "fail"
    # batch: the committing run's rows (`_run_id`), after every commit; table: the whole table, on the
    # maintenance schedule. "run" is the earlier name of "batch" and still accepted.
    scope: Literal["batch", "table", "run"] = "batch"  # "run" is read as "batch"

    @field_validator("scope", mode="before")
    @classmethod
    def _scope_synonym(cls, value: object) -> object:
        return "batch" if value == "run" else value

    @model_validator(mode="after")
    def _arguments(self) -> TableCheck:
        needs_column = {"completeness", "values_in_set", "values_in_range", "values_match_regex", "freshness"}
        if self.type in needs_column and self.column is None:
            raise ValueError(f"check type {self.type!r} needs a column")
        if self.type == "uniqueness" and not (self.column or self.columns):
            raise ValueError("check type 'uniqueness' needs column or columns")
        if self.type == "values_in_set" and not self.values:
            raise ValueError("check type 'values_in_set' needs values")
        if self.type == "values_match_regex" and not self.pattern:
            raise ValueError("check type 'values_match_regex' needs pattern")
        if self.type == "values_in_range" and self.range_min is None and self.range_max is None:
            raise ValueError("check type 'values_in_range' needs range_min or range_max")
        if self.type == "referential_integrity" and (self.reference is None or self.column is None):
            raise ValueError("check type 'referential_integrity' needs column and reference")
        if self.type == "custom_sql" and not self.sql:
            raise ValueError("check type 'custom_sql' needs sql")
        return self

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.columns or ((self.column,) if self.column else ())

    def thresholds(self) -> tuple[float | None, float | None]:
        """Thresholds with the defaults that make each metric meaningful on its own."""
        if self.min is not None or self.max is not None:
            return self.min, self.max
        defaults: dict[str, tuple[float | None, float | None]] = {
            "row_count": (1, None),
            "freshness": (None, 24),
            "custom_sql": (None, 0),
        }
        return defaults.get(self.type, (1.0, None))


class DerivedModel(_Strict):
    """A gold table refreshed from this dataset after a successful run (Spark SQL on EMR Serverless)."""

    name: Annotated[str, Field(pattern=IDENTIFIER)]
    sql: str


class Contract(_Strict):
    """A dataset: where its files land, how to read them, the table they become, and its checks."""

    name: Annotated[str, Field(pattern=IDENTIFIER)]
    description: str | None = None
    landing_prefix: str
    format: FormatSpec
    columns: tuple[Column, ...] = Field(min_length=1)
    primary_key: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    write_mode: Literal["append", "merge", "overwrite_partitions"] = "append"
    schema_evolution: Literal["strict", "add_columns", "rescue"] = "strict"
    row_rules: tuple[RowRule, ...] = ()
    checks: tuple[TableCheck, ...] = ()
    derived: tuple[DerivedModel, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        problems = self.problems()
        if problems:
            # One line per problem, each "<field path>: <message>" (the loader gives each its line).
            raise ValueError("\n".join(problems))
        return self

    def problems(self) -> list[str]:
        """Every cross-field problem, as "<field path>: <message>" (path parts joined by '.')."""
        names = [c.name for c in self.columns]
        out = [
            f"columns.{i}.name: duplicate column name {n!r}"
            for i, n in enumerate(names)
            if names.index(n) != i
        ]
        clashes = reserved([*names, *(c.source for c in self.columns if c.source)])
        if clashes:
            out.append(
                f"columns: {', '.join(repr(c) for c in clashes)} collide(s) with the engine's reserved "
                f"columns ({', '.join(RESERVED_COLUMNS)}, compared case-insensitively); rename it"
            )
        known = set(names)
        for field, cols in (("primary_key", self.primary_key), ("partition_by", self.partition_by)):
            out += [f"{field}.{i}: names unknown column {c!r}" for i, c in enumerate(cols) if c not in known]
        if self.write_mode == "merge" and not self.primary_key:
            out.append("write_mode: 'merge' needs a primary_key")
        if self.write_mode == "overwrite_partitions" and not self.partition_by:
            out.append("write_mode: 'overwrite_partitions' needs partition_by")
        for i, rule in enumerate(self.row_rules):
            if rule.column is not None and rule.column not in known:
                out.append(f"row_rules.{i}.column: rule {rule.label!r} names unknown column {rule.column!r}")
        check_names = [c.name for c in self.checks]
        for i, check in enumerate(self.checks):
            missing = [c for c in check.key_columns if c not in known]
            if missing:
                out.append(f"checks.{i}: check {check.name!r} names unknown columns: {', '.join(missing)}")
            if check_names.index(check.name) != i:
                out.append(f"checks.{i}.name: check names must be unique ({check.name!r} repeats)")
        return out

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def app_id_prefix(self) -> str:
        return f"lakehouse:{self.name}"
