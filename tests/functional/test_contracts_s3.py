"""Glue and EMR jobs read the dataset contracts from the artifacts bucket."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from lakehouse.contracts import ContractRegistry
from lakehouse.errors import ContractError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def artifacts(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="artifacts")
        yield s3


def test_contracts_load_from_an_s3_prefix(artifacts: object) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    for path in sorted((ROOT / "datasets").glob("*.yaml")):
        s3.put_object(Bucket="artifacts", Key=f"datasets/{path.name}", Body=path.read_bytes())
    s3.put_object(Bucket="artifacts", Key="datasets/README.txt", Body=b"not a contract")

    registry = ContractRegistry.from_location("s3://artifacts/datasets/")

    assert registry.names() == ["lineitem", "orders"]
    assert registry.get("orders") == ContractRegistry.from_dir(ROOT / "datasets").get("orders")


def test_an_empty_prefix_and_a_bad_contract_name_their_location(artifacts: object) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    with pytest.raises(ContractError, match="s3://artifacts/nothing/: no dataset contracts"):
        ContractRegistry.from_location("s3://artifacts/nothing/")
    s3.put_object(Bucket="artifacts", Key="bad/orders.yaml", Body=b"name: orders\nlanding_prefix: 3\n")
    with pytest.raises(ContractError, match=r"s3://artifacts/bad/orders.yaml:\d+"):
        ContractRegistry.from_location("s3://artifacts/bad/")
