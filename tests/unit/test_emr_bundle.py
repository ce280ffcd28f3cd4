"""The EMR Serverless jobs run on EMR's own Python 3.9 with pyspark and Delta, nothing else (issue 11, #2).

EMR 7.x images are Amazon Linux 2023, whose Python is 3.9; they ship pyspark and the Delta jars
(/usr/share/aws/delta/lib/) but not PyYAML, pydantic or sqlglot. No Python 3.9 interpreter is available
here, so the checks are static (the 3.9 grammar, 3.10+ names and calls) plus a real import of the bundle
in a subprocess in which every other third-party package is blocked.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ASL_FILES = [ROOT / "statemachine" / "ingest.asl.json", ROOT / "statemachine" / "maintenance.asl.json"]
EMR_TASK = "arn:aws:states:::emr-serverless:startJobRun.sync"
BUNDLE_URI = "s3://${ArtifactsBucket}/dist/lakehouse_emr.zip"
MODELS_URI = "s3://${ArtifactsBucket}/dist/derived_models.json"
# Names added after 3.9 that a module could use without a grammar change.
TYPING_310_PLUS = {
    "TypeAlias", "ParamSpec", "Concatenate", "TypeGuard", "Self", "LiteralString", "Never", "assert_never",
    "reveal_type", "Required", "NotRequired", "Unpack", "TypeVarTuple", "dataclass_transform", "override",
    "is_typeddict", "assert_type", "get_overloads", "clear_overloads", "TypeAliasType", "TypeIs", "ReadOnly",
}  # fmt: skip
STDLIB_310_PLUS = {"tomllib"}


def _bundle_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("emr_bundle", ROOT / "scripts" / "emr_bundle.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["emr_bundle"] = module
    spec.loader.exec_module(module)
    return module


BUNDLE = _bundle_module()
CLOSURE = BUNDLE.closure()
SHIPPED = sorted(CLOSURE.modules) + list(BUNDLE.ENTRY_POINTS)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_entry_points_import_only_the_stdlib_pyspark_and_delta() -> None:
    assert {p.name for p in BUNDLE.ENTRY_POINTS} == {"refresh_derived.py", "maintain_table.py"}
    assert set(CLOSURE.third_party) <= BUNDLE.ALLOWED_THIRD_PARTY, CLOSURE.third_party
    assert "pyspark" in CLOSURE.third_party
    assert not CLOSURE.stdlib & STDLIB_310_PLUS
    shipped = {str(p.relative_to(ROOT / "src")) for p in CLOSURE.modules}
    assert {
        "lakehouse/spark/refresh.py",
        "lakehouse/spark/maintain.py",
        "lakehouse/spark/session.py",
    } <= shipped
    # The contract model, the SQL compiler, the ingest flow and the Lambda engine stay out.
    kept_out = (
        "lakehouse/contracts",
        "lakehouse/sql",
        "lakehouse/duckdb_engine",
        "lakehouse/ingest_core",
        "lakehouse/formats",
    )
    assert not {s for s in shipped if s.startswith(kept_out)}


@pytest.mark.parametrize("path", SHIPPED, ids=_rel)
def test_shipped_module_is_python_3_9(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path), feature_version=(3, 9))
    problems = []
    annotated = any(
        (isinstance(n, (ast.AnnAssign, ast.arg)) and n.annotation is not None)
        or (isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.returns is not None)
        for n in ast.walk(tree)
    )
    future = any(
        isinstance(n, ast.ImportFrom)
        and n.module == "__future__"
        and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    if annotated and not future:
        problems.append("annotations without `from __future__ import annotations` (X | None, list[int] fail)")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "typing":
            problems += [f"typing.{a.name} is 3.10+" for a in node.names if a.name in TYPING_310_PLUS]
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            keywords = {k.arg for k in node.keywords}
            if name == "zip" and "strict" in keywords:
                problems.append(f"line {node.lineno}: zip(strict=) is 3.10+")
            if name == "dataclass" and keywords & {"slots", "kw_only", "match_args"}:
                problems.append(f"line {node.lineno}: dataclass({keywords}) is 3.10+")
            if name in ("isinstance", "issubclass") and any(isinstance(a, ast.BinOp) for a in node.args[1:]):
                problems.append(f"line {node.lineno}: X | Y at run time is 3.10+")
        if isinstance(node, ast.With) and re.match(r"\s*with\s*\(", source.splitlines()[node.lineno - 1]):
            problems.append(f"line {node.lineno}: parenthesized context managers are 3.10+")
    assert problems == []


def test_the_3_9_checks_catch_3_10_code(tmp_path: Path) -> None:
    """The checks above are not vacuous: a `match` statement and zip(strict=) are reported."""
    with pytest.raises(SyntaxError):
        ast.parse("match x:\n    case 1:\n        pass\n", feature_version=(3, 9))
    bad = tmp_path / "bad.py"
    bad.write_text("from __future__ import annotations\nfor a, b in zip([1], [2], strict=True):\n    pass\n")
    with pytest.raises(AssertionError, match="zip"):
        test_shipped_module_is_python_3_9(bad)


BLOCKER = """
import importlib.abc, sys
BLOCKED = {"pydantic", "pydantic_core", "yaml", "sqlglot", "deltalake", "duckdb", "pyarrow", "boto3",
           "aws_lambda_powertools", "jsonschema"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not on EMR Serverless")
        return None
sys.meta_path.insert(0, Block())
sys.path = [p for p in sys.path if not p.rstrip("/").endswith("/src")]
sys.path.insert(0, sys.argv[1])
import lakehouse.spark.refresh, lakehouse.spark.maintain, lakehouse.spark.session
assert lakehouse.spark.refresh.__file__.startswith(sys.argv[1]), lakehouse.spark.refresh.__file__
print("ok")
"""


def test_the_bundle_imports_with_nothing_but_pyspark(tmp_path: Path) -> None:
    pytest.importorskip("pyspark", reason="pyspark (the local extra) is what EMR provides; needed here")
    out = tmp_path / "lakehouse_emr.zip"
    names = BUNDLE.build(out)
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == names
        assert {i.date_time for i in archive.infolist()} == {BUNDLE.ZIP_TIMESTAMP}  # reproducible
    again = tmp_path / "again.zip"
    BUNDLE.build(again)
    assert again.read_bytes() == out.read_bytes()
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER, str(out)], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def _emr_tasks() -> list[tuple[str, dict[str, Any]]]:
    from .test_template import iter_states

    found = []
    for path in ASL_FILES:
        for name, state in iter_states(json.loads(path.read_text())["States"]):
            if state.get("Resource") == EMR_TASK:
                found.append((name, state))
    return found


def test_emr_tasks_ship_the_bundle_and_no_python_archive() -> None:
    tasks = _emr_tasks()
    assert {n for n, _ in tasks} == {"RefreshDerived", "MaintainTables/MaintainWithEmr"}
    for name, state in tasks:
        params = state["Parameters"]["JobDriver"]["SparkSubmit"]["SparkSubmitParameters"]
        assert f"spark.submit.pyFiles={BUNDLE_URI}" in params, name
        assert "spark.archives" not in params, name
        assert "PYSPARK_PYTHON" not in params, name
        assert "spark.sql.catalogImplementation=in-memory" in params, name
        entry = state["Parameters"]["JobDriver"]["SparkSubmit"]["EntryPoint"]
        script = ROOT / "jobs" / "emr" / entry.rsplit("/", 1)[1]
        assert script in BUNDLE.ENTRY_POINTS, entry
        # Every option the ASL passes is one the script accepts.
        arguments = state["Parameters"]["JobDriver"]["SparkSubmit"]["EntryPointArguments.$"]
        accepted = set(re.findall(r"add_argument\(\"(--\w+)\"", script.read_text()))
        assert set(re.findall(r"'(--\w+)'", arguments)) <= accepted, name
    refresh = dict(tasks)["RefreshDerived"]["Parameters"]["JobDriver"]["SparkSubmit"]["EntryPointArguments.$"]
    assert f"'--models_uri', '{MODELS_URI}'" in refresh


def test_emr_jobs_need_no_glue_catalog_access() -> None:
    """With the Glue catalog client, Spark's session start calls glue:GetDatabase on database/default
    (and CreateDatabase when it is missing). The jobs use path-based tables and the in-memory catalog, so
    the job role has no Glue permission at all; if the client came back, database/default must too."""
    from .test_template import RESOURCES

    role = RESOURCES["EmrJobRole"]["Properties"]["Policies"]
    glue_statements = [
        st
        for p in role
        for st in p["PolicyDocument"]["Statement"]
        if any(str(a).startswith("glue:") for a in st["Action"])
    ]
    uses_glue_client = any(
        "AWSGlueDataCatalogHiveClientFactory"
        in s["Parameters"]["JobDriver"]["SparkSubmit"]["SparkSubmitParameters"]
        for _, s in _emr_tasks()
    )
    if uses_glue_client:
        assert any("database/default" in json.dumps(st["Resource"]) for st in glue_statements)
    else:
        assert glue_statements == []


def test_upload_script_builds_and_uploads_the_emr_artifacts() -> None:
    script = (ROOT / "scripts" / "upload_artifacts.sh").read_text()
    assert "scripts/emr_bundle.py dist/lakehouse_emr.zip" in script
    assert "-m lakehouse.sql.derived datasets > dist/derived_models.json" in script
    for name in ("lakehouse_emr.zip", "derived_models.json"):
        assert f'"s3://$bucket/dist/{name}"' in script
    assert "pyspark_env" not in script


def test_derived_models_document_feeds_the_emr_job() -> None:
    from lakehouse.contracts import ContractRegistry
    from lakehouse.spark.refresh import models_of
    from lakehouse.sql.derived import derived_document

    document = json.loads(json.dumps(derived_document(ContractRegistry.from_location(ROOT / "datasets"))))
    [model] = models_of(document, "orders")
    assert model["name"] == "orders_by_status"
    assert model["sources"] == ["orders"]
    assert "GROUP BY" in model["sql"].upper()
