"""Load dataset contracts from YAML, with errors that name the file, the line and the field."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from pydantic import ValidationError

from lakehouse.contracts.model import Contract
from lakehouse.errors import ContractError

SCHEMA_RESOURCE = "contract.schema.json"
# A contract may use YAML anchors and aliases, but with every alias expanded it must stay under this
# many values (scalars, mappings and sequences). A "billion laughs" document (nested aliases, 1.3 KB)
# expands to 10^9 values: JSON Schema validation of it took minutes and gigabytes.
MAX_EXPANDED_NODES = 20_000


def contract_json_schema() -> dict[str, Any]:
    """The JSON Schema of a contract, generated from the model (shipped as schemas/contract.schema.json)."""
    schema = Contract.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Lakehouse dataset contract"
    return schema


@lru_cache(maxsize=1)
def _shipped_schema() -> dict[str, Any]:
    text = resources.files("lakehouse").joinpath("schemas", SCHEMA_RESOURCE).read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _line_of(root: yaml.Node | None, path: Sequence[str | int]) -> int | None:
    """1-based line of the YAML node at `path`, or of its deepest existing parent."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if found is None:
                break
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _field(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _check_aliases(text: str, source: str) -> None:
    """Refuse a document whose aliases expand beyond MAX_EXPANDED_NODES values, or refer to themselves.

    Works on the event stream, so nothing is expanded: each anchor's size is known when its node ends,
    and an alias adds that size to every collection that holds it.
    """
    sizes: dict[str, int] = {}
    open_anchors: set[str] = set()
    stack: list[list[Any]] = [[None, 0]]  # [anchor, expanded size so far] per open collection
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark else 1
            if event.anchor in open_anchors:
                raise ContractError(
                    f"{source}:{line}: alias *{event.anchor} refers to its own anchor (a recursive value); "
                    "write the value out"
                )
            stack[-1][1] += sizes.get(str(event.anchor), 1)
            total = sum(size for _, size in stack)
            if total > MAX_EXPANDED_NODES:
                raise ContractError(
                    f"{source}:{line}: alias *{event.anchor} makes the contract expand to more than "
                    f"{MAX_EXPANDED_NODES:,} values (nested YAML aliases, a 'billion laughs' document?); "
                    "write the values out or use fewer aliases"
                )
        elif isinstance(event, yaml.ScalarEvent):
            stack[-1][1] += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1])
            if event.anchor:
                open_anchors.add(event.anchor)
        elif isinstance(event, yaml.CollectionEndEvent) and len(stack) > 1:
            anchor, size = stack.pop()
            stack[-1][1] += size
            if anchor:
                sizes[anchor] = size
                open_anchors.discard(anchor)


def parse_contract(text: str, source: str = "<contract>") -> Contract:
    """Parse and validate one contract's YAML text."""
    try:
        _check_aliases(text, source)
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ContractError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise ContractError(f"{source}:1: a contract must be a YAML mapping, got {type(data).__name__}")

    validator = jsonschema.Draft202012Validator(_shipped_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:50]:
            path = list(err.absolute_path)
            if err.validator == "additionalProperties" and isinstance(err.instance, dict):
                # Point at the unexpected key itself, not at the mapping that holds it.
                known = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
                path += [k for k in err.instance if k not in known][:1]
            lines.append(f"{source}:{_line_of(root, path)}: {_field(path)}: {err.message}")
        raise ContractError("invalid contract:\n  " + "\n  ".join(lines))
    try:
        return Contract.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            path = [p for p in err["loc"] if isinstance(p, str | int)]
            for msg in err["msg"].removeprefix("Value error, ").splitlines():
                lines.append(_located(root, source, path, msg))
        raise ContractError("invalid contract:\n  " + "\n  ".join(lines)) from exc


def _located(root: yaml.Node | None, source: str, path: list[str | int], msg: str) -> str:
    """`file:line: field: message`. Cross-field problems (the model validator's, one per line) start
    with the dotted field path they are about; point at that field."""
    head, sep, rest = msg.partition(": ")
    parts = head.split(".")
    if not path and sep and parts[0] in Contract.model_fields:
        path = [int(p) if p.isdigit() else p for p in parts]
        msg = rest
    return f"{source}:{_line_of(root, path)}: {_field(path)}: {msg}"


def load_contract(path: Path) -> Contract:
    """Load `datasets/<name>.yaml`; the file name must match the contract's name."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(f"{path}: cannot read contract: {exc.strerror}") from exc
    contract = parse_contract(text, str(path))
    if contract.name != path.stem:
        raise ContractError(f"{path}:1: name: {contract.name!r} must match the file name {path.stem!r}")
    return contract


class ContractRegistry:
    """All contracts in a folder, and the dataset a landed key belongs to."""

    def __init__(self, contracts: Sequence[Contract]) -> None:
        self._by_name = {c.name: c for c in contracts}

    @classmethod
    def from_dir(cls, directory: Path) -> ContractRegistry:
        if not directory.is_dir():
            raise ContractError(f"{directory}: no such contracts folder")
        contracts, problems = [], []
        for path in sorted(directory.glob("*.yaml")):
            try:
                contracts.append(load_contract(path))
            except ContractError as exc:  # report every bad contract, not only the first
                problems.append(str(exc))
        if problems:
            raise ContractError("\n".join(problems))
        return cls(contracts)

    @classmethod
    def from_location(cls, location: str | Path) -> ContractRegistry:
        """A local folder, or `s3://bucket/prefix/` (how Glue and EMR jobs get the contracts)."""
        text = str(location)
        if not text.startswith("s3://"):
            return cls.from_dir(Path(text))
        import boto3

        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        client = boto3.client("s3")
        contracts = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith(".yaml"):
                    body = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
                    contract = parse_contract(body, f"s3://{bucket}/{key}")
                    if contract.name != Path(key).stem:
                        raise ContractError(
                            f"s3://{bucket}/{key}:1: name: {contract.name!r} must match the file name"
                        )
                    contracts.append(contract)
        if not contracts:
            raise ContractError(f"{text}: no dataset contracts (*.yaml) found")
        return cls(contracts)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, name: str) -> Contract:
        try:
            return self._by_name[name]
        except KeyError:
            raise ContractError(
                f"no contract for dataset {name!r}; known: {', '.join(self.names())}"
            ) from None

    def for_key(self, key: str) -> Contract:
        """The contract whose landing prefix is the longest prefix of `key`."""
        matches = [c for c in self._by_name.values() if key.startswith(c.landing_prefix)]
        if not matches:
            raise ContractError(f"no dataset contract has a landing prefix matching key {key!r}")
        return max(matches, key=lambda c: len(c.landing_prefix))
