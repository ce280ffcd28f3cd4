"""The Delta Lake jars local Spark needs, fetched once from Maven Central and cached.

No PyPI or Debian package ships them (docs/ARCHITECTURE.md, "Facts this design relies on"). Glue 5.0
and EMR Serverless 7.x bring their own (`--datalake-formats delta`, `/usr/share/aws/delta/lib`), so this
is for local Spark only. The cache is `$LAKEHOUSE_JAR_CACHE` or `~/.cache/lakehouse/jars`; once filled,
nothing touches the network. A local Maven repository (`~/.m2/repository`) is used when it already holds
the jars, and `LAKEHOUSE_MAVEN_REPO` points the download at a mirror (a corporate proxy of Maven Central).

This module does not import pyspark: `python -m lakehouse.spark.jars` fills the cache (CI, Makefile).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DELTA_VERSION = "3.3.0"  # matches Glue 5.0 (Spark 3.5.4) and EMR Serverless 7.x
SCALA_BINARY = "2.12"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"


@dataclass(frozen=True)
class Artifact:
    group: str
    name: str
    version: str

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}.jar"

    def relative_path(self) -> str:
        return f"{self.group.replace('.', '/')}/{self.name}/{self.version}/{self.file_name}"


# delta-spark's only other runtime dependency (antlr4-runtime) ships with Spark itself.
DELTA_ARTIFACTS = (
    Artifact("io.delta", f"delta-spark_{SCALA_BINARY}", DELTA_VERSION),
    Artifact("io.delta", "delta-storage", DELTA_VERSION),
)


class JarFetchError(RuntimeError):
    """A jar is neither cached nor downloadable."""


def cache_dir() -> Path:
    configured = os.environ.get("LAKEHOUSE_JAR_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lakehouse" / "jars"


def _repository() -> str:
    return os.environ.get("LAKEHOUSE_MAVEN_REPO", MAVEN_CENTRAL).rstrip("/")


def _fetch(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "lakehouse-jars/1 (python urllib)"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data: bytes = response.read()
        return data


def _download(artifact: Artifact, target: Path, timeout: float) -> None:
    url = f"{_repository()}/{artifact.relative_path()}"
    try:
        data = _fetch(url, timeout)
        expected = _fetch(url + ".sha1", timeout).decode("ascii").split()[0].strip().lower()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise JarFetchError(f"cannot download {url}: {exc}") from exc
    actual = hashlib.sha1(data).hexdigest()  # Maven Central publishes SHA-1 next to every file
    if actual != expected:
        raise JarFetchError(f"checksum mismatch for {url}: got sha1 {actual}, Maven Central says {expected}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: concurrent test workers never see a half-written jar.
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as handle:
        handle.write(data)
        temp = Path(handle.name)
    temp.chmod(0o644)
    temp.replace(target)


def cached_jars() -> list[Path] | None:
    """The jars if every one is already available locally (cache or ~/.m2), else None. No network."""
    found: list[Path] = []
    m2 = Path.home() / ".m2" / "repository"
    for artifact in DELTA_ARTIFACTS:
        candidates = [cache_dir() / artifact.file_name, m2 / artifact.relative_path()]
        hit = next((p for p in candidates if p.is_file() and p.stat().st_size > 0), None)
        if hit is None:
            return None
        found.append(hit)
    return found


def delta_jars(*, download: bool = True, timeout: float = 60.0) -> list[Path]:
    """Local paths of the Delta jars, downloading the missing ones into the cache."""
    cached = cached_jars()
    if cached is not None:
        return cached
    if not download:
        missing = [a.file_name for a in DELTA_ARTIFACTS if not (cache_dir() / a.file_name).is_file()]
        raise JarFetchError(f"Delta jars not cached in {cache_dir()}: {', '.join(missing)}")
    out = []
    for artifact in DELTA_ARTIFACTS:
        target = cache_dir() / artifact.file_name
        if not target.is_file():
            _download(artifact, target, timeout)
        out.append(target)
    return out


def main() -> int:
    try:
        for jar in delta_jars():
            print(jar)
    except JarFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
