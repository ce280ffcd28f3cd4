"""`lakehouse demo` (with and without Spark), `invoke` with every sample event, the HTML run report."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import ROOT, Cli, csv_rows, write_orders

from lakehouse.adapters.local import LocalObjectStore
from lakehouse.local.jobs import spark_status

pytestmark = pytest.mark.e2e

EVENTS = sorted((ROOT / "events").glob("*.json"))
# Sample event file -> the template function it is for (events are named after the function's folder).
_SUFFIXES = ("_acquire", "_release", "_eventbridge", "_s3", "_sqs")


def _function_for(event: Path) -> str:
    stem = event.stem
    for suffix in _SUFFIXES:
        stem = stem.removesuffix(suffix)
    return "".join(part.title() for part in stem.split("_")) + "Function"


def _check_demo(result: dict[str, Any], home: Path, *, spark: bool) -> None:
    runs = {r["file"]: r for r in result["runs"]}
    samples = home / "samples"
    orders_rows = len(csv_rows(samples / "orders.csv"))
    lineitem_rows = len(csv_rows(samples / "lineitem.csv"))
    messy = csv_rows(samples / "orders_messy.csv")
    # Independently of the pipeline: a messy row is good if its price parses, is >= 0, its date parses
    # and its status is known.
    from datetime import date

    def good(row: dict[str, str]) -> bool:
        try:
            price = float(row["o_totalprice"])
            date.fromisoformat(row["o_orderdate"])
        except ValueError:
            return False
        return price >= 0 and row["o_orderstatus"] in ("F", "O", "P") and "," not in row["o_totalprice"]

    messy_good = sum(1 for row in messy if good(row))

    assert runs["orders.csv"]["status"] == "SUCCEEDED"
    assert runs["orders.csv"]["rows_written"] == orders_rows
    assert runs["lineitem.csv"]["status"] == "SUCCEEDED"
    assert runs["lineitem.csv"]["rows_written"] == lineitem_rows
    assert runs["lineitem.csv"]["route"] == ("glue" if spark else "lambda")
    assert runs["orders_messy.csv"]["status"] == "SUCCEEDED"
    assert runs["orders_messy.csv"]["rows_written"] == messy_good
    assert runs["orders_messy.csv"]["rows_rejected"] == len(messy) - messy_good > 0
    failing = runs["lineitem_bad_quantity.csv"]
    assert failing["status"] == "QUARANTINED"
    assert failing["checks_failed"] == ["quantity_positive"]

    tables = {t["table"]: t for t in result["tables"]}
    assert tables["orders"]["rows"] == orders_rows + messy_good
    assert tables["lineitem"]["rows"] == lineitem_rows  # the failing file was rolled back
    assert tables["orders_by_status"]["rows"] == 3
    assert result["alerts"] == 1
    index = home / "reports" / "index.html"
    assert result["report"] == index.as_uri()
    assert index.is_file()


@pytest.mark.slow
def test_demo_without_spark(cli: Cli) -> None:
    result = cli("demo", "--no-spark", "--json")
    assert result.exit_code == 0, result.stderr
    _check_demo(result.json(), cli.home, spark=False)
    # `query` agrees with the source file.
    count = cli("query", "SELECT count(*) AS n FROM lakehouse.lineitem", "-f", "json").json()
    assert count == [{"n": len(csv_rows(cli.home / "samples" / "lineitem.csv"))}]


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_demo_with_spark(cli: Cli) -> None:
    ok, detail = spark_status()
    if not ok:
        pytest.skip(f"local Spark unavailable: {detail}")
    result = cli("demo", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    _check_demo(data, cli.home, spark=True)
    human = cli("runs")
    assert "glue" in human.stdout


@pytest.fixture(scope="module")
def event_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home where the sample events' object exists and its run has happened (started by an event)."""
    home = tmp_path_factory.mktemp("events") / "home"
    key = "orders/ingest_date=2026-11-26/orders part 1.csv"
    landed = home / "buckets" / "landing" / key
    landed.parent.mkdir(parents=True)
    write_orders(landed, 1, 3)
    # The sample events name version Lh5z...: the local (versioned) landing bucket must hold it, since
    # every read is pinned to the event's version.
    sample = json.loads((ROOT / "events/on_object_created_eventbridge.json").read_text())
    LocalObjectStore(home, versioned_buckets=("landing",)).snapshot(
        "landing", key, version_id=sample["detail"]["object"]["version-id"]
    )
    cli = Cli(home)
    started = cli(
        "invoke",
        "OnObjectCreatedFunction",
        "--event",
        str(ROOT / "events/on_object_created_eventbridge.json"),
        "--no-spark",
    )
    assert started.exit_code == 0, started.stderr
    runs = cli("runs", "--json").json()
    assert [r["status"] for r in runs] == ["SUCCEEDED"], runs
    # ReadGlueResult reads what a Glue job would have left: the commit of that run.
    result = home / "buckets" / "lake" / "runs" / runs[0]["run_id"] / "commit.json"
    result.parent.mkdir(parents=True)
    result.write_text(json.dumps(runs[0]["commit"]))
    return home


@pytest.mark.parametrize("event", EVENTS or [None], ids=lambda e: e.name if e else "no-events")
def test_invoke_sample_event(event: Path | None, event_home: Path, tmp_path: Path) -> None:
    if event is None:
        pytest.skip(f"no sample events in {ROOT / 'events'}")
    home = tmp_path / "home"
    shutil.copytree(event_home, home)
    cli = Cli(home)
    seed = write_orders(tmp_path / "seed.csv", 1, 3)  # for objects the event names that are not there
    result = cli("invoke", _function_for(event), "--event", str(event), "--no-drain", "--seed", str(seed))
    assert result.exit_code == 0, result.stdout + result.stderr
    body = json.loads(result.stdout)
    assert isinstance(body, dict)
    assert "errorType" not in body


def test_invoke_reports_errors_like_sam(cli: Cli, tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"run_id": "r1", "dataset": "no_such_dataset"}))
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"InspectObjectFunction": {"LAMBDA_ROUTE_MAX_BYTES": "5"}}))
    result = cli("invoke", "InspectObjectFunction", "--event", str(event), "--env-vars", str(env_vars))
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["errorType"] == "ContractError"
    assert "no_such_dataset" in body["errorMessage"]
    unknown = cli("invoke", "NoSuchFunction", "--event", str(event))
    assert unknown.exit_code == 2
    assert "InspectObjectFunction" in unknown.stderr


class _ReportParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.states_in_graph: set[str] = set()
        self.visited_in_graph: set[str] = set()
        self.timing_rows: list[str] = []
        self.checks = 0
        self.text: list[str] = []
        self.svg = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag not in ("meta", "br", "rect", "path"):
            self.stack.append(tag)
        if tag == "svg":
            self.svg += 1
        classes = (attr.get("class") or "").split()
        if tag == "g" and "state" in classes:
            self.states_in_graph.add(str(attr.get("data-state")))
            if "visited" in classes:
                self.visited_in_graph.add(str(attr.get("data-state")))
        if tag == "tr" and "timing" in classes:
            self.timing_rows.append(str(attr.get("data-state")))
        if tag == "tr" and "check" in classes:
            self.checks += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_run_report_renders(cli: Cli, tmp_path: Path) -> None:
    source = write_orders(tmp_path / "orders_r.csv", 1, 7)
    result = cli("run", str(source), "--no-spark", "--json")
    assert result.exit_code == 0
    run = result.json()["runs"][0]
    page = Path(run["report"].removeprefix("file://"))
    assert page.parent == cli.home / "reports"
    record = cli("runs", "--id", run["run_id"], "--json").json()

    parser = _ReportParser()
    parser.feed(page.read_text())
    parser.close()
    assert parser.stack == []  # every element closed
    assert parser.svg == 1
    definition = json.loads((ROOT / "statemachine" / "ingest.asl.json").read_text())
    assert parser.states_in_graph == set(definition["States"])
    assert parser.visited_in_graph == set(record["path"])
    assert parser.timing_rows == record["path"]
    assert parser.checks == len(record["checks"]["results"])
    text = " ".join(parser.text)
    assert "SUCCEEDED" in text
    assert f"{run['table_version']}" in text
    assert "orders_r.csv" in text
    index = (cli.home / "reports" / "index.html").read_text()
    # The report is the execution's (the drain that took the file), linked from the index.
    assert Path(run["report"]).name in index

    chromium = Path("/usr/bin/chromium")
    if chromium.exists():  # .ci/run installs it; elsewhere the HTML checks above stand alone
        shot = tmp_path / "report.png"
        subprocess.run(
            [str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium'}", f"--screenshot={shot}", "--window-size=1400,1800",
             page.as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        png = shot.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        # A blank or error page compresses to a few KB; the report (tables, SVG graph) to far more.
        assert len(png) > 40_000, len(png)


def test_spark_missing_says_what_and_how(cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lakehouse.local.executor import LocalOptions, LocalPipeline
    from lakehouse.local.jobs import SparkMissing

    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    with pytest.raises(SparkMissing, match="Java"):
        LocalPipeline(LocalOptions(home=cli.home, datasets_dir=ROOT / "datasets", spark=True))
    # The demo says so and carries on through the Lambda engine.
    result = cli("demo", "--scale", "0.001", "--json")
    assert result.exit_code == 0, result.stderr
    assert "Java" in result.stderr
    assert {r["route"] for r in result.json()["runs"]} == {"lambda"}
