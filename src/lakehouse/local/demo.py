"""Sample data for `lakehouse demo`: TPC-H orders + lineitem, a messy orders file, a file that fails a check.

Every generated file comes with the counts it should produce, computed here from what was written (not
from the pipeline), so the demo summary and the tests can compare the two.
"""

from __future__ import annotations

import csv
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

# Keys far above TPC-H's (6,000,000 x scale factor at most for the small scales the demo uses).
MESSY_KEY_BASE = 90_000_000
BAD_QUANTITY_KEY_BASE = 95_000_000


@dataclass(frozen=True)
class SampleFile:
    path: Path
    dataset: str
    description: str
    rows: int  # data rows in the file
    good_rows: int  # rows that should reach the table
    bad_rows: int  # rows that should be quarantined (row rules)
    expect_failure: bool = False


def tpchgen_binary() -> str:
    """`tpchgen-cli` beside the running interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "tpchgen-cli"
    if beside.is_file():
        return str(beside)
    found = shutil.which("tpchgen-cli")
    if found:
        return found
    raise FileNotFoundError(
        "tpchgen-cli is not installed; install the local extra: .venv/bin/pip install -e '.[local]'"
    )


def csv_rows(path: Path) -> int:
    """Data rows of a CSV file with a header, counted with the csv module (quoted newlines count once)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return max(0, sum(1 for _ in csv.reader(fh)) - 1)


def generate_tpch(folder: Path, scale: float) -> list[SampleFile]:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            tpchgen_binary(),
            "csv",
            "-s",
            str(scale),
            "-T",
            "orders",
            "-T",
            "lineitem",
            "-o",
            str(folder),
            "--overwrite",
        ],
        check=True,
        capture_output=True,
    )
    out = []
    for table in ("orders", "lineitem"):
        path = folder / f"{table}.csv"
        rows = csv_rows(path)
        out.append(SampleFile(path, table, f"TPC-H {table} (scale {scale})", rows, rows, 0))
    return out


def generate_messy_orders(path: Path, rows: int = 400, seed: int = 7) -> SampleFile:
    """Orders from Faker: most are fine, some have a bad number, date or status (quarantined rows)."""
    from faker import Faker

    fake = Faker()
    Faker.seed(seed)
    rng = random.Random(seed)
    header = [
        "o_orderkey", "o_custkey", "o_orderstatus", "o_totalprice", "o_orderdate",
        "o_orderpriority", "o_clerk", "o_shippriority", "o_comment",
    ]  # fmt: skip
    good = bad = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for i in range(rows):
            ordered = fake.date_between(start_date=date(1995, 1, 1), end_date=date(1998, 8, 1))
            row = [
                str(MESSY_KEY_BASE + i),
                str(rng.randint(1, 1500)),
                rng.choice("FOP"),
                f"{rng.uniform(900, 450_000):.2f}",
                ordered.isoformat(),
                rng.choice(["1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"]),
                f"Clerk#{rng.randint(1, 1000):09d}",
                "0",
                fake.sentence(nb_words=6),
            ]
            defect = i % 16  # one row in four breaks exactly one rule
            match defect:
                case 1:
                    row[3] = rng.choice(["12,50", "n/a", "1.2.3", "$400"])  # not a decimal: type rule
                case 5:
                    row[4] = rng.choice(["1997-02-30", "31/12/1996", "yesterday"])  # not a date: type rule
                case 9:
                    row[2] = rng.choice(["X", "done", "?"])  # not in {F, O, P}
                case 13:
                    row[3] = f"-{rng.uniform(1, 900):.2f}"  # below the price range
            if defect in (1, 5, 9, 13):
                bad += 1
            else:
                good += 1
            writer.writerow(row)
    return SampleFile(path, "orders", "Faker orders with bad numbers, dates and statuses", rows, good, bad)


def generate_bad_quantity_lineitem(path: Path, rows: int = 120, seed: int = 11) -> SampleFile:
    """Valid rows whose quantities break the check `quantity_positive` (1..50): commit, then roll back."""
    rng = random.Random(seed)
    header = [
        "l_orderkey", "l_partkey", "l_suppkey", "l_linenumber", "l_quantity", "l_extendedprice",
        "l_discount", "l_tax", "l_returnflag", "l_linestatus", "l_shipdate", "l_commitdate",
        "l_receiptdate", "l_shipinstruct", "l_shipmode", "l_comment",
    ]  # fmt: skip
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for i in range(rows):
            shipped = date(1996, 1, 1) + timedelta(days=rng.randint(0, 900))
            writer.writerow(
                [
                    BAD_QUANTITY_KEY_BASE + i // 4, rng.randint(1, 2000), rng.randint(1, 100), i % 4 + 1,
                    rng.choice([0, 75, 120, 500]), f"{rng.uniform(900, 90_000):.2f}",
                    f"{rng.choice([0, 0.02, 0.05, 0.1]):.2f}", "0.04", rng.choice("ANR"), "O",
                    shipped.isoformat(), (shipped + timedelta(days=10)).isoformat(),
                    (shipped + timedelta(days=20)).isoformat(), "NONE", rng.choice(["AIR", "RAIL", "SHIP"]),
                    "quantity out of range",
                ]
            )  # fmt: skip
    return SampleFile(
        path,
        "lineitem",
        "lineitem rows with quantities outside 1..50 (fails check quantity_positive)",
        rows,
        rows,
        0,
        expect_failure=True,
    )


def generate_all(folder: Path, scale: float = 0.01) -> list[SampleFile]:
    """The demo's files, in the order they should land (orders first: lineitem checks refer to it)."""
    orders, lineitem = generate_tpch(folder, scale)
    messy = generate_messy_orders(folder / "orders_messy.csv")
    failing = generate_bad_quantity_lineitem(folder / "lineitem_bad_quantity.csv")
    return [orders, lineitem, messy, failing]
