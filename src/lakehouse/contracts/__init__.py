"""Dataset contracts."""

from lakehouse.contracts.loader import ContractRegistry, load_contract, parse_contract
from lakehouse.contracts.model import Column, Contract, FormatSpec, RowRule, TableCheck

__all__ = [
    "Column",
    "Contract",
    "ContractRegistry",
    "FormatSpec",
    "RowRule",
    "TableCheck",
    "load_contract",
    "parse_contract",
]
