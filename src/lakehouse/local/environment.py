"""The environment each function runs with locally: the template's, plus what makes it local.

`sam local invoke` reads a function's `Environment.Variables` (and the Globals) from template.yaml; so
does `LocalEnvironment`, which then points the handler at the local backend (`LAKEHOUSE_BACKEND=local`,
the home, the contracts folder). The executor (`LocalPipeline`) and `lakehouse invoke` both build their
environments here; they differ only where `sam local invoke` differs from a pipeline run (an env-vars
file, the handler's INFO logs and, with `--metrics`, its EMF metrics).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.local.project import Project

# --no-spark: no object is ever "large", so Inspect never picks the Glue route.
NO_SPARK_ROUTE_MAX_BYTES = 1 << 62
# The function whose environment (the template's Globals) the executor itself runs with.
BASE_FUNCTION = "InspectObjectFunction"


@dataclass(frozen=True)
class LocalEnvironment:
    """Builds each function's environment from template.yaml and the local overrides."""

    project: Project
    home: Path
    datasets_dir: Path
    log_level: str = "WARNING"
    # LAMBDA_ROUTE_MAX_BYTES for the handlers; None: the template's LambdaRouteMaxBytes.
    route_max_bytes: int | None = None
    # Template parameter overrides (SAM env-vars file "Parameters").
    parameter_overrides: Mapping[str, str] = field(default_factory=dict)

    def parameters(self) -> dict[str, str]:
        return {**self.project.parameter_defaults(), **self.parameter_overrides}

    def local_core(self) -> dict[str, str]:
        """What every locally run handler needs: the local backend and its home, no X-Ray."""
        return {
            "LAKEHOUSE_BACKEND": "local",
            "LAKEHOUSE_HOME": str(self.home),
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    def overrides(self) -> dict[str, str]:
        """What makes a handler local in a pipeline run, on top of the environment the template gives it."""
        env = {
            **self.local_core(),
            "DATASETS_DIR": str(self.datasets_dir),
            "POWERTOOLS_METRICS_NAMESPACE": os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Lakehouse"),
            # The EMF metrics blob and INFO logs of every handler would drown the CLI's own output.
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": self.log_level,
            "LOG_LEVEL": self.log_level,
        }
        if self.route_max_bytes is not None:
            env["LAMBDA_ROUTE_MAX_BYTES"] = str(self.route_max_bytes)
        return env

    def function_env(self, logical_id: str) -> dict[str, str]:
        """A function's environment in a pipeline run."""
        return {**self.project.function_environment(logical_id, self.parameters()), **self.overrides()}

    def base_env(self) -> dict[str, str]:
        """The environment every function shares (Globals), localised: what the executor itself uses."""
        return self.function_env(BASE_FUNCTION)

    def substitutions(self, machine: str) -> dict[str, str]:
        """DefinitionSubstitutions of a state machine, from the template, resolved to local values."""
        return {
            key: self.project.resolve(value, self.parameters())
            for key, value in self.project.definition_substitution_keys(machine).items()
        }

    def invoke_env(self, logical_id: str, env_vars: Mapping[str, Any], *, metrics: bool) -> dict[str, str]:
        """A function's environment for `lakehouse invoke`, as `sam local invoke --env-vars` builds it.

        `env_vars` is SAM's env-vars file: "Parameters" applies to every function, "<LogicalId>" to that
        one. Handler logs keep their template level; metrics stay off unless `metrics`.
        """
        env = self.project.function_environment(logical_id, dict(self.parameter_overrides))
        parameters: Mapping[str, Any] = env_vars.get("Parameters") or {}
        own: Mapping[str, Any] = env_vars.get(logical_id) or {}
        for section in (parameters, own):
            env.update({str(k): str(v) for k, v in section.items()})
        env.update(
            {
                **self.local_core(),
                "POWERTOOLS_METRICS_NAMESPACE": env.get("POWERTOOLS_METRICS_NAMESPACE") or "Lakehouse",
                "AWS_LAMBDA_FUNCTION_NAME": logical_id,
            }
        )
        if not metrics:  # the EMF blob is CloudWatch's input, not something to read in a terminal
            env.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        if not own.get("DATASETS_DIR") and not parameters.get("DATASETS_DIR"):
            env["DATASETS_DIR"] = str(self.datasets_dir)  # the template's /opt/datasets is the layer path
        return env
