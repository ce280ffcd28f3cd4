"""The project on disk (template.yaml, functions/, statemachine/, jobs/) as the local runtime sees it.

`sam local invoke` reads the template to find a function's code, handler and environment; so do we.
The template uses CloudFormation short tags (`!Ref`, `!GetAtt`, `!Sub`...), which plain YAML loaders
reject, so `load_template` maps every `!Tag` to its long form (`{"Ref": ...}`, `{"Fn::GetAtt": ...}`).
Intrinsics in environment values are then resolved to their local equivalents (bucket refs become the
local bucket names, other resources a recognisable fake name or ARN).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ACCOUNT_ID = "000000000000"
REGION = "us-east-1"

# Logical ids of resources whose local stand-in has a fixed name (the defaults of lakehouse.settings).
LOCAL_RESOURCE_NAMES = {
    "LandingBucket": "landing",
    "LakeBucket": "lake",
    "QuarantineBucket": "quarantine",
    "ArtifactsBucket": "artifacts",
    "AthenaResultsBucket": "athena-results",
    "LeaseTable": "leases",
    "RunLedgerTable": "runs",
    "PendingObjectsTable": "pending",
    "GlueDatabase": "lakehouse",
    "AthenaWorkGroup": "primary",
    "BronzeToSilverGlueJob": "BronzeToSilverGlueJob",
    "EmrApplication": "local-emr-application",
}


class ProjectError(RuntimeError):
    """The project files are missing or not what the local runtime expects."""


def find_project_root(start: Path | None = None) -> Path:
    """The folder holding template.yaml and statemachine/.

    `LAKEHOUSE_PROJECT_ROOT` wins; then the current folder and its parents (a user's checkout); then the
    checkout this package was installed from in editable mode (src/lakehouse/local/ -> three levels up).
    """
    configured = os.environ.get("LAKEHOUSE_PROJECT_ROOT")
    candidates: list[Path] = []
    if configured:
        candidates.append(Path(configured))
    here = (start or Path.cwd()).resolve()
    candidates.extend([here, *here.parents])
    candidates.append(Path(__file__).resolve().parents[3])
    for candidate in candidates:
        if (candidate / "template.yaml").is_file() and (candidate / "statemachine").is_dir():
            return candidate
    raise ProjectError(
        "cannot find the project (a folder with template.yaml and statemachine/); "
        "run from the checkout or set LAKEHOUSE_PROJECT_ROOT"
    )


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation short-form intrinsic tags."""


def _intrinsic(loader: yaml.Loader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    """template.yaml as plain data, intrinsics in their long form."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_TemplateLoader)
    except (OSError, yaml.YAMLError) as exc:
        raise ProjectError(f"{path}: cannot read the template: {exc}") from exc
    if not isinstance(data, dict):
        raise ProjectError(f"{path}: not a CloudFormation template")
    return data


@dataclass(frozen=True)
class FunctionSpec:
    """One AWS::Serverless::Function: where its code is and what environment it gets."""

    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, Any]
    timeout_s: float
    memory_mb: int

    @property
    def module_file(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return self.code_dir / (module.replace(".", "/") + ".py")

    @property
    def function_name(self) -> str:
        return self.logical_id

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.logical_id}"


@dataclass
class Project:
    """The template and the files it points at."""

    root: Path
    template: dict[str, Any] = field(repr=False)

    @classmethod
    def load(cls, root: Path | None = None) -> Project:
        root = (root or find_project_root()).resolve()
        return cls(
            root, _cached_template(root / "template.yaml", (root / "template.yaml").stat().st_mtime_ns)
        )

    @property
    def resources(self) -> dict[str, Any]:
        resources = self.template.get("Resources") or {}
        return resources if isinstance(resources, dict) else {}

    @property
    def parameters(self) -> dict[str, Any]:
        params = self.template.get("Parameters") or {}
        return params if isinstance(params, dict) else {}

    def parameter_defaults(self) -> dict[str, str]:
        return {
            name: str(spec.get("Default", ""))
            for name, spec in self.parameters.items()
            if isinstance(spec, dict)
        }

    def function_ids(self) -> list[str]:
        return sorted(
            name
            for name, res in self.resources.items()
            if isinstance(res, dict) and res.get("Type") == "AWS::Serverless::Function"
        )

    def function(self, logical_id: str) -> FunctionSpec:
        resource = self.resources.get(logical_id)
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            known = ", ".join(self.function_ids())
            raise ProjectError(f"template.yaml has no function {logical_id!r}; functions: {known}")
        globals_fn = ((self.template.get("Globals") or {}).get("Function")) or {}
        props = resource.get("Properties") or {}
        env: dict[str, Any] = dict(((globals_fn.get("Environment") or {}).get("Variables")) or {})
        env.update(((props.get("Environment") or {}).get("Variables")) or {})
        code_uri = props.get("CodeUri") or globals_fn.get("CodeUri")
        if not isinstance(code_uri, str):
            raise ProjectError(f"{logical_id}: CodeUri must be a local folder, got {code_uri!r}")
        handler = props.get("Handler") or globals_fn.get("Handler") or "app.handler"
        return FunctionSpec(
            logical_id=logical_id,
            code_dir=(self.root / code_uri).resolve(),
            handler=str(handler),
            environment=env,
            timeout_s=float(props.get("Timeout") or globals_fn.get("Timeout") or 3),
            memory_mb=int(props.get("MemorySize") or globals_fn.get("MemorySize") or 128),
        )

    def definition_substitution_keys(self, state_machine_id: str) -> dict[str, Any]:
        resource = self.resources.get(state_machine_id) or {}
        subs = (resource.get("Properties") or {}).get("DefinitionSubstitutions") or {}
        return dict(subs)

    def resolve(self, value: Any, parameters: Mapping[str, str]) -> str:
        """An environment value with intrinsics replaced by local equivalents."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        if isinstance(value, dict) and len(value) == 1:
            ((kind, arg),) = value.items()
            if kind == "Ref":
                return self._ref(str(arg), parameters)
            if kind == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self._get_att(str(parts[0]), str(parts[1]) if len(parts) > 1 else "Arn")
            if kind == "Fn::Sub":
                template, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                return self._sub(str(template), variables or {}, parameters)
            if kind == "Fn::If" and isinstance(arg, list) and len(arg) == 3:  # noqa: PLR2004 (arity)
                return self.resolve(arg[1], parameters)  # conditions are not evaluated locally
            if kind == "Fn::Join" and isinstance(arg, list) and len(arg) == 2:  # noqa: PLR2004 (arity)
                return str(arg[0]).join(self.resolve(v, parameters) for v in arg[1])
        raise ProjectError(f"cannot resolve {value!r} to a local value")

    def _ref(self, name: str, parameters: Mapping[str, str]) -> str:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::StackName": "lakehouse-local",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in parameters:
            return str(parameters[name])
        if name in self.parameters:
            return str((self.parameters[name] or {}).get("Default", ""))
        base, _, _attr = name.partition(".")  # `!Ref Fn.Alias`
        resource = self.resources.get(base) or {}
        kind = resource.get("Type", "") if isinstance(resource, dict) else ""
        if base in LOCAL_RESOURCE_NAMES:
            return LOCAL_RESOURCE_NAMES[base]
        if kind == "AWS::Serverless::Function":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{base}"
        if kind in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
            return f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{base}"
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{base}"
        return f"local-{base}"

    def _get_att(self, name: str, attribute: str) -> str:
        if attribute.endswith("Arn") or attribute == "Arn":
            return f"arn:aws:local:{REGION}:{ACCOUNT_ID}:{name}"
        return LOCAL_RESOURCE_NAMES.get(name, f"local-{name}-{attribute}")

    def _sub(self, template: str, variables: Mapping[str, Any], parameters: Mapping[str, str]) -> str:
        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token in variables:
                return self.resolve(variables[token], parameters)
            if "." in token and token.split(".", 1)[0] in self.resources:
                res, attr = token.split(".", 1)
                return self._get_att(res, attr)
            return self._ref(token, parameters)

        return re.sub(r"\$\{([^}!][^}]*)\}", replace, template)

    def function_environment(self, logical_id: str, parameters: Mapping[str, str]) -> dict[str, str]:
        spec = self.function(logical_id)
        return {key: self.resolve(value, parameters) for key, value in spec.environment.items()}

    def ingest_definition(self) -> str:
        return self._definition("ingest.asl.json")

    def maintenance_definition(self) -> str:
        return self._definition("maintenance.asl.json")

    def _definition(self, name: str) -> str:
        path = self.root / "statemachine" / name
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProjectError(f"{path}: cannot read the state machine definition: {exc}") from exc


@lru_cache(maxsize=4)
def _cached_template(path: Path, mtime_ns: int) -> dict[str, Any]:
    # Keyed by mtime so an edited template is re-read; parsing 2,000 lines of YAML takes ~0.2 s.
    return load_template(path)


# -- in-process handlers --------------------------------------------------------------------------

# os.environ is process-wide: one handler call at a time may swap it (local runs are sequential).
_ENV_LOCK = threading.RLock()
_MODULES: dict[Path, ModuleType] = {}


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore the previous values."""
    with _ENV_LOCK:
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update({key: str(value) for key, value in values.items()})
        try:
            yield
        finally:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old


def load_handler_module(spec: FunctionSpec) -> ModuleType:
    """Import the function's handler module from its file, once per process.

    Every function's module is called `app`, so each gets a unique module name; its folder goes on
    sys.path during the import, as in Lambda, so sibling modules import too. Import with the function's
    environment already set: Powertools reads it at import time.
    """
    path = spec.module_file
    cached = _MODULES.get(path)
    if cached is not None:
        return cached
    if not path.is_file():
        raise ProjectError(
            f"{spec.logical_id}: handler module {path} does not exist (Handler {spec.handler})"
        )
    name = "lakehouse_function_" + re.sub(r"\W", "_", f"{spec.code_dir.name}_{path.stem}")
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ProjectError(f"cannot import {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.path.insert(0, str(spec.code_dir))
    try:
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(spec.code_dir))
    _MODULES[path] = module
    return module


def handler_of(spec: FunctionSpec) -> Any:
    module = load_handler_module(spec)
    _, _, attr = spec.handler.rpartition(".")
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise ProjectError(f"{spec.module_file} has no callable {attr!r} (Handler {spec.handler})")
    return handler
