"""Typed settings, read once from the environment (the template sets them on every Lambda)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where things are and how big a file the Lambda route takes."""

    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="ignore", populate_by_name=True
    )

    backend: Literal["aws", "local"] = Field("local", alias="LAKEHOUSE_BACKEND")
    home: Path = Field(Path(".lakehouse"), alias="LAKEHOUSE_HOME")
    datasets_dir: Path = Field(Path("datasets"), alias="DATASETS_DIR")
    landing_bucket: str = Field("landing", alias="LANDING_BUCKET")
    lake_bucket: str = Field("lake", alias="LAKE_BUCKET")
    quarantine_bucket: str = Field("quarantine", alias="QUARANTINE_BUCKET")
    artifacts_bucket: str = Field("artifacts", alias="ARTIFACTS_BUCKET")
    lease_table: str = Field("leases", alias="LEASE_TABLE")
    run_ledger_table: str = Field("runs", alias="RUN_LEDGER_TABLE")
    pending_table: str = Field("pending", alias="PENDING_TABLE")
    glue_database: str = Field("lakehouse", alias="GLUE_DATABASE")
    state_machine_arn: str = Field("", alias="STATE_MACHINE_ARN")
    alert_topic_arn: str | None = Field(None, alias="ALERT_TOPIC_ARN")
    event_bus_name: str = Field("default", alias="EVENT_BUS_NAME")
    lambda_route_max_bytes: int = Field(256 * 1024 * 1024, alias="LAMBDA_ROUTE_MAX_BYTES")
    lease_ttl_seconds: int = Field(900, alias="LEASE_TTL_SECONDS")
    # A drain's batch: at most this many object versions and bytes in one Delta transaction
    # (docs/ARCHITECTURE.md, "Pending set and drains"; 1 keeps one object per drain for debugging).
    batch_max_objects: int = Field(100, alias="BATCH_MAX_OBJECTS", ge=1)
    batch_max_bytes: int = Field(64 * 1024 * 1024, alias="BATCH_MAX_BYTES", ge=1)
    # The same for objects above the Lambda route: one Glue job run commits up to this many (listed in
    # a manifest, docs/ARCHITECTURE.md "The Glue route"); 1 sends each large object alone.
    glue_batch_max_objects: int = Field(10, alias="GLUE_BATCH_MAX_OBJECTS", ge=1)
    glue_batch_max_bytes: int = Field(16 * 1024**3, alias="GLUE_BATCH_MAX_BYTES", ge=1)
    # A drain refreshes its dataset's derived tables only if the last refresh is at least this old.
    derived_refresh_min_interval_s: int = Field(0, alias="DERIVED_REFRESH_MIN_INTERVAL_S", ge=0)
    # DuckDB's memory limit inside the engine; keeps peak RSS flat whatever the file size.
    duckdb_memory_limit: str = Field("256MB", alias="DUCKDB_MEMORY_LIMIT")
    duckdb_threads: int = Field(2, alias="DUCKDB_THREADS")
    # S3 endpoint override (moto server in tests, LocalStack/MinIO for users who want one).
    s3_endpoint_url: str | None = Field(None, alias="AWS_ENDPOINT_URL_S3")
    region: str = Field("us-east-1", alias="AWS_REGION")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (Lambda handlers call this once per cold start)."""
    return Settings()
