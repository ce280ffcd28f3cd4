"""One resolver between the S3 URIs a deployed stack uses and the local home's folders.

Locally a bucket is the folder `<home>/buckets/<bucket>/` (lakehouse.adapters.local): `s3://lake/tables/
orders` is `<home>/buckets/lake/tables/orders`. The job arguments (Glue, EMR) and the sample events of
`lakehouse invoke` go through this one place instead of building those paths by hand.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lakehouse.local.project import LOCAL_RESOURCE_NAMES

# The local names of the buckets the template defines (`LandingBucket` -> "landing", ...).
TEMPLATE_BUCKETS = frozenset(v for k, v in LOCAL_RESOURCE_NAMES.items() if k.endswith("Bucket"))


class LocalPaths:
    """s3://<bucket>/<key> <-> <home>/buckets/<bucket>/<key>."""

    def __init__(self, home: Path | str) -> None:
        self.home = Path(home).resolve()

    def bucket_dir(self, bucket: str) -> Path:
        return self.home / "buckets" / bucket

    def to_local(self, uri: str) -> str:
        """The local path of an `s3://` URI of a template bucket; any other string unchanged."""
        if not uri.startswith("s3://"):
            return uri
        bucket, _, key = uri[5:].partition("/")
        if bucket not in TEMPLATE_BUCKETS:
            return uri
        return str(self.bucket_dir(bucket) / key) if key else str(self.bucket_dir(bucket))

    def location(self, path: str) -> tuple[str, str] | None:
        """(bucket, key) of a local path under `<home>/buckets/`; None for a path outside it."""
        root = str(self.home / "buckets") + os.sep
        full = os.path.abspath(path)
        if not full.startswith(root):
            return None
        bucket, _, key = full[len(root) :].replace(os.sep, "/").partition("/")
        if path.endswith("/") and key:
            key += "/"
        return bucket, key

    def localise(self, value: Any) -> Any:
        """`to_local` applied to every string in a JSON value (a sample event, a job's arguments)."""
        if isinstance(value, dict):
            return {k: self.localise(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.localise(v) for v in value]
        if isinstance(value, str):
            return self.to_local(value)
        return value
