"""Shared fixtures: a local home, and an S3 emulator (moto's server) in a separate process.

The S3 server must run in its own process: deltalake's history/restore against a server running in the
test process hang on the GIL (docs/ARCHITECTURE.md, "Facts this design relies on"). Under xdist each
worker starts its own server on a free port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_REGION = "us-east-1"


def pytest_configure(config: pytest.Config) -> None:
    """Every deployed function gets POWERTOOLS_METRICS_NAMESPACE from the template's Globals, and a handler
    module reads it once, when it is imported: without it, whichever test imported a handler first
    decided whether its metrics could ever flush (an order-dependent failure)."""
    del config
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Lakehouse")


def _die_with_parent() -> None:
    """Linux: have the kernel stop the server if the worker dies hard (pytest-timeout, kill -9)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint URL of a moto server subprocess (S3 and every other service moto emulates)."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto server did not answer on {url} within 30 s") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class S3Env:
    """What a test needs to talk to the emulated S3: endpoint, region, and its own fresh buckets."""

    endpoint_url: str
    region: str
    buckets: dict[str, str] = field(default_factory=dict)

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", region_name=self.region, endpoint_url=self.endpoint_url)


@pytest.fixture
def s3_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> S3Env:
    """Test credentials, S3 endpoint override and fresh, uniquely named buckets (landing, lake, ...).

    Bucket names are unique per test, so no moto reset is needed and tests never see each other's data.
    The bucket env vars are set too, so `Settings()` built inside the test points at these buckets.
    """
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", _REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", _REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    env = S3Env(endpoint_url=moto_server, region=_REGION)
    client = env.client()
    suffix = uuid.uuid4().hex[:12]
    for role in ("landing", "lake", "quarantine", "artifacts"):
        bucket = f"{role}-{suffix}"
        client.create_bucket(Bucket=bucket)
        env.buckets[role] = bucket
        monkeypatch.setenv(f"{role.upper()}_BUCKET", bucket)
    return env


@pytest.fixture
def tmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh LAKEHOUSE_HOME for the local backend."""
    home = tmp_path / "lakehouse-home"
    home.mkdir()
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    monkeypatch.setenv("LAKEHOUSE_BACKEND", "local")
    return home
