"""The seams of the local runtime: one path resolver, one environment builder, one local account id."""

from __future__ import annotations

import json
from pathlib import Path

from lakehouse.local.environment import LocalEnvironment
from lakehouse.local.paths import LocalPaths
from lakehouse.local.project import ACCOUNT_ID, Project
from lakehouse.local.sfn import LocalStateMachine

ROOT = Path(__file__).resolve().parents[2]


def test_paths_map_template_buckets_to_the_home_and_leave_other_uris(tmp_path: Path) -> None:
    paths = LocalPaths(tmp_path)
    assert paths.bucket_dir("lake") == tmp_path.resolve() / "buckets" / "lake"
    assert paths.to_local("s3://lake/tables/orders") == str(tmp_path.resolve() / "buckets/lake/tables/orders")
    assert paths.to_local("s3://landing") == str(tmp_path.resolve() / "buckets/landing")
    assert paths.to_local("s3://someone-elses-bucket/x.csv") == "s3://someone-elses-bucket/x.csv"
    assert paths.to_local("tables/orders") == "tables/orders"
    assert paths.location(f"{tmp_path}/buckets/lake/tables/orders/") == ("lake", "tables/orders/")
    assert paths.location(str(tmp_path / "elsewhere/x.csv")) is None
    event = {"detail": {"uris": ["s3://quarantine/rows/a.parquet", 3]}, "n": None}
    assert paths.localise(event) == {
        "detail": {"uris": [str(tmp_path.resolve() / "buckets/quarantine/rows/a.parquet"), 3]},
        "n": None,
    }


def _environment(tmp_path: Path, **kwargs: object) -> LocalEnvironment:
    return LocalEnvironment(Project.load(ROOT), tmp_path, tmp_path / "datasets", **kwargs)  # type: ignore[arg-type]


def test_pipeline_and_invoke_environments_share_the_template_and_the_local_backend(tmp_path: Path) -> None:
    env = _environment(tmp_path, route_max_bytes=10)
    run = env.function_env("CommitObjectFunction")
    invoked = env.invoke_env("CommitObjectFunction", {}, metrics=False)
    template = Project.load(ROOT).function_environment("CommitObjectFunction", {})
    for values in (run, invoked):
        assert values["LAKEHOUSE_BACKEND"] == "local"
        assert values["LAKEHOUSE_HOME"] == str(tmp_path)
        assert values["DATASETS_DIR"] == str(tmp_path / "datasets")
        assert values["POWERTOOLS_METRICS_DISABLED"] == "true"
        assert set(template) <= set(values)
    assert run["LAMBDA_ROUTE_MAX_BYTES"] == "10"
    assert run["LOG_LEVEL"] == "WARNING"
    assert invoked["AWS_LAMBDA_FUNCTION_NAME"] == "CommitObjectFunction"


def test_invoke_environment_applies_a_sam_env_vars_file(tmp_path: Path) -> None:
    env = _environment(tmp_path)
    env_vars = {
        "Parameters": {"LOG_LEVEL": "DEBUG"},
        "CommitObjectFunction": {"DATASETS_DIR": "/mine", "EXTRA": 1},
    }
    values = env.invoke_env("CommitObjectFunction", env_vars, metrics=True)
    assert values["LOG_LEVEL"] == "DEBUG"
    assert values["DATASETS_DIR"] == "/mine"  # the file wins over the local contracts folder
    assert values["EXTRA"] == "1"
    assert "POWERTOOLS_METRICS_DISABLED" not in values  # --metrics: the handler's EMF blob is printed
    other = env.invoke_env("InspectObjectFunction", env_vars, metrics=False)
    assert other["DATASETS_DIR"] == str(tmp_path / "datasets")
    assert "EXTRA" not in other


def test_executions_live_in_the_local_account_every_other_local_arn_uses(tmp_path: Path) -> None:
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
    with LocalStateMachine(definition, name="IngestStateMachine", time_scale=0.0) as sm:
        result = sm.wait(sm.start({}, execution_name="run-1"))
    assert result.status == "SUCCEEDED"
    assert result.execution_arn == f"arn:aws:states:us-east-1:{ACCOUNT_ID}:execution:IngestStateMachine:run-1"
    assert sm.state_machine_arn.split(":")[4] == ACCOUNT_ID
