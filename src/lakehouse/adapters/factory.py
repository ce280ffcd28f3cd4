"""Build the adapter set a backend calls for: `aws` (boto3) or `local` (files under the local home)."""

from __future__ import annotations

from dataclasses import dataclass

from lakehouse.ports import Catalog, LeaseStore, Notifier, ObjectStore, PendingSet, RunLedger
from lakehouse.settings import Settings, get_settings


@dataclass(frozen=True)
class Adapters:
    """Everything domain code needs from the outside world, behind the ports."""

    objects: ObjectStore
    leases: LeaseStore
    catalog: Catalog
    notifier: Notifier
    ledger: RunLedger
    pending: PendingSet


def build_adapters(settings: Settings | None = None) -> Adapters:
    """The adapters for `settings.backend`; imports only that backend's module."""
    settings = settings or get_settings()
    if settings.backend == "local":
        from lakehouse import access
        from lakehouse.adapters import local

        home = settings.home.resolve()
        adapters = Adapters(
            objects=local.LocalObjectStore(home, versioned_buckets=(settings.landing_bucket,)),
            leases=local.LocalLeaseStore(home),
            catalog=local.LocalCatalog(home),
            notifier=local.LocalNotifier(home),
            ledger=local.LocalRunLedger(home),
            pending=local.LocalPendingSet(home),
        )
        # Local IAM: each call is checked against the role of the task making it (docs/IAM.md).
        return access.enforcing(adapters, settings)
    if settings.backend == "aws":
        from lakehouse.adapters import aws

        return Adapters(
            objects=aws.S3ObjectStore(settings.region, endpoint_url=settings.s3_endpoint_url),
            leases=aws.DynamoDbLeaseStore(settings.lease_table, settings.region),
            catalog=aws.GlueCatalog(settings.region),
            notifier=aws.SnsEventBridgeNotifier(
                settings.region,
                settings.alert_topic_arn or None,
                event_bus_name=settings.event_bus_name or "default",
            ),
            ledger=aws.DynamoDbRunLedger(settings.run_ledger_table, settings.region),
            pending=aws.DynamoDbPendingSet(settings.pending_table, settings.region),
        )
    raise ValueError(f"unknown LAKEHOUSE_BACKEND {settings.backend!r} (expected 'aws' or 'local')")
