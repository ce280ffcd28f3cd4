"""The guarded seams between the local Step Functions runtime (`local/sfn.py`) and moto's internals.

Public seams come first. moto's documented configuration
``mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}})``
runs an ASL definition with the interpreter ported from LocalStack (``moto.stepfunctions.parser``) and
sends every Lambda invocation to ``LambdaSimpleBackend``; boto3's ``create_state_machine``,
``start_execution``, ``describe_execution``, ``stop_execution`` and ``get_execution_history`` drive it.
`LocalStateMachine` uses exactly these. moto 5.2.5 has no public seam for the rest:

- ``LambdaSimpleBackend`` answers with queued static results (the ``moto-api`` ``set_lambda_simple_result``
  call), never with a handler's answer computed from the event;
- ``MockConfigFile`` test cases (``<arn>#<TestCase>``): moto's ``load_mock_test_case_for`` is a stub
  that finds none (LocalStack reads ``SFN_MOCK_CONFIG`` there; moto does not);
- service integrations other than moto's own backends, Retry/Wait/``.sync`` timing, error names and
  state timeouts are plain code inside the interpreter.

So every private name that `local/sfn.py` replaces is a `MotoPatch` here, and every private name it
only calls is a `MotoContract`. Each states the target (``"module:Qualified.name"``), what the
replacement relies on (`Requirement`: a signature, an attribute, a source fragment), and the moto
versions it was checked against (`VersionRange`). `MotoPatch.apply` refuses to install outside that
range (`UnsupportedMotoVersionError`) or when a requirement fails (`MotoContractError`); both messages
name the patch, the internal and the moto version found. ``tests/unit/test_moto_patches.py`` checks
each entry against the installed moto, one test per entry, so a moto upgrade fails there, by name,
instead of strangely inside a running state machine.

On a moto upgrade: run ``tests/unit/test_moto_patches.py``. For each failing entry, read the new moto
code, adapt the replacement in `local/sfn.py` (or drop it, if moto fixed the problem upstream) and
its requirements here, then widen `SUPPORTED` and run the state-machine tests.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any
from unittest import mock

__all__ = [
    "ALL",
    "CONTRACTS",
    "PATCHES",
    "SUPPORTED",
    "MotoContract",
    "MotoContractError",
    "MotoPatch",
    "Requirement",
    "UnsupportedMotoVersionError",
    "VersionRange",
    "moto_version",
]


class MotoContractError(RuntimeError):
    """An internal of moto that a patch relies on is not as expected."""


class UnsupportedMotoVersionError(MotoContractError):
    """The installed moto is outside the versions a patch was checked against."""


def moto_version() -> str:
    """The version of the installed moto distribution."""
    return metadata.version("moto")


def _release(version: str) -> tuple[int, int, int] | None:
    """``"5.2.5"`` -> ``(5, 2, 5)``; None for anything but a plain X.Y.Z release (dev, rc, local)."""
    found = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    return None if found is None else (int(found[1]), int(found[2]), int(found[3]))


@dataclass(frozen=True)
class VersionRange:
    """Plain releases from ``lowest`` to ``highest``, both included."""

    lowest: str
    highest: str

    def __contains__(self, version: object) -> bool:
        release = _release(str(version))
        low, high = _release(self.lowest), _release(self.highest)
        return release is not None and low is not None and high is not None and low <= release <= high

    def __str__(self) -> str:
        return self.lowest if self.lowest == self.highest else f"{self.lowest} to {self.highest}"


SUPPORTED = VersionRange("5.2.5", "5.2.5")
"""The moto versions every entry was checked against (pyproject.toml pins moto 5.2.5)."""


def resolve(target: str) -> Any:
    """``"package.module:Class.attr"`` -> the object (imports the module)."""
    module_name, _, qualname = target.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in filter(None, qualname.split(".")):
        found = getattr(found, part)
    return found


def _owner(target: str) -> tuple[Any, str]:
    module_name, _, qualname = target.partition(":")
    owner_name, _, attribute = qualname.rpartition(".")
    return resolve(f"{module_name}:{owner_name}"), attribute


@dataclass(frozen=True)
class Requirement:
    """One fact about moto that a patch relies on; ``holds()`` checks it against the installed moto."""

    what: str
    holds: Callable[[], bool]

    def problem(self) -> str | None:
        """None if the fact holds, else what is wrong."""
        try:
            if self.holds():
                return None
        except Exception as exc:  # an import or attribute that is gone is a broken contract too
            return f"{self.what} ({type(exc).__name__}: {exc})"
        return self.what


def params(target: str, *names: str) -> Requirement:
    """``target`` is a callable whose parameters are exactly ``names`` (in order)."""

    def holds() -> bool:
        return tuple(inspect.signature(resolve(target)).parameters) == names

    return Requirement(f"{target} takes ({', '.join(names)})", holds)


def exists(target: str) -> Requirement:
    """``target`` resolves (the module imports and every attribute on the path is there)."""

    def holds() -> bool:
        resolve(target)  # raises ImportError / AttributeError when it is gone
        return True

    return Requirement(f"{target} exists", holds)


def is_(target: str, expected: str) -> Requirement:
    """``target`` is the very object ``expected`` (e.g. a module-level name bound to a class)."""
    return Requirement(f"{target} is {expected}", lambda: resolve(target) is resolve(expected))


def source_has(target: str, fragment: str) -> Requirement:
    """The source code of ``target`` (a module, class or function) contains ``fragment``."""
    return Requirement(
        f"the source of {target} contains {fragment!r}",
        lambda: fragment in inspect.getsource(resolve(target)),
    )


def source_matches(target: str, pattern: str, meaning: str) -> Requirement:
    """The source code of ``target`` matches the regular expression ``pattern`` (``meaning`` says why)."""
    return Requirement(
        f"the source of {target} {meaning}",
        lambda: re.search(pattern, inspect.getsource(resolve(target))) is not None,
    )


_VERIFIED: set[tuple[str, str]] = set()
_VERIFIED_LOCK = threading.Lock()


@dataclass(frozen=True)
class MotoContract:
    """A private moto internal that `local/sfn.py` relies on, with the facts it relies on."""

    name: str
    target: str
    purpose: str
    requires: tuple[Requirement, ...] = ()
    versions: VersionRange = SUPPORTED

    @property
    def kind(self) -> str:
        return "moto patch" if isinstance(self, MotoPatch) else "moto internal"

    def gate(self) -> None:
        """Raise `UnsupportedMotoVersionError` unless the installed moto is in `versions`."""
        found = moto_version()
        if found not in self.versions:
            raise UnsupportedMotoVersionError(
                f"{self.kind} {self.name!r} ({self.target}) was checked against moto {self.versions}, "
                f"found moto {found}: run tests/unit/test_moto_patches.py, review the patch in "
                "lakehouse.local.moto_patches, then widen its version range"
            )

    def problems(self) -> list[str]:
        """Every requirement (the target first) that does not hold on the installed moto."""
        return [p for r in (exists(self.target), *self.requires) if (p := r.problem()) is not None]

    def verify(self) -> None:
        """The version gate, then every requirement; raise naming the patch and the broken internal."""
        self.gate()
        broken = self.problems()
        if broken:
            raise MotoContractError(
                f"{self.kind} {self.name!r} ({self.purpose}) relies on moto internals that changed in moto "
                f"{moto_version()}: " + "; ".join(broken)
            )

    def ensure(self) -> None:
        """`verify` once per process and moto version (the version gate runs every time)."""
        self.gate()
        key = (self.name, moto_version())
        with _VERIFIED_LOCK:
            if key in _VERIFIED:
                return
        self.verify()
        with _VERIFIED_LOCK:
            _VERIFIED.add(key)


@dataclass(frozen=True)
class MotoPatch(MotoContract):
    """A private moto name replaced while a `LocalStateMachine` is entered."""

    update_dict: bool = False
    """The target is a dict: update it (``mock.patch.dict``) instead of replacing it."""

    def apply(self, stack: contextlib.ExitStack, build: Callable[[Any], Any]) -> None:
        """Check the patch, then install ``build(original)`` until ``stack`` closes."""
        self.ensure()
        owner, attribute = _owner(self.target)
        replacement = build(getattr(owner, attribute))
        if self.update_dict:
            stack.enter_context(mock.patch.dict(getattr(owner, attribute), replacement))
        else:
            stack.enter_context(mock.patch.object(owner, attribute, replacement))


def ensure_all() -> None:
    """Check every entry; call before installing any patch, as requirements read moto's unpatched code."""
    for entry in ALL:
        entry.ensure()


# -- the entries -----------------------------------------------------------------------------------

_SFN = "moto.stepfunctions.parser"
_ASL = f"{_SFN}.asl.component"
_TASK = f"{_ASL}.state.exec.state_task"
_SERVICE = f"{_TASK}.service"
_CALLBACK = f"{_SERVICE}.state_task_service_callback:StateTaskServiceCallback"
_UNSUPPORTED = f"{_SERVICE}.state_task_service_unsupported"
_EXECUTE_STATE = f"{_ASL}.state.exec.execute_state"
_ENVIRONMENT = f"{_SFN}.asl.eval.environment:Environment"
_ERROR_NAME = f"{_ASL}.common.error_name"
_CUSTOM_ERROR_NAME = f"{_ERROR_NAME}.custom_error_name:CustomErrorName"
_MOCK_CONFIG = f"{_SFN}.mocking.mock_config"
_SERVICE_TASK_PARAMS = ("self", "env", "resource_runtime_part", "normalised_parameters", "state_credentials")

USER_CONFIG = MotoPatch(
    "user-config",
    "moto.core.config:default_user_config",
    "restore moto's config after mock_aws(config=...) nested inside another mock_aws",
    (
        Requirement(
            "moto.core.config:default_user_config is a dict",
            lambda: isinstance(resolve("moto.core.config:default_user_config"), dict),
        ),
        source_has("moto.core.models", "default_user_config"),
    ),
    update_dict=True,
)

LAMBDA_INVOKE = MotoPatch(
    "lambda-invoke",
    "moto.awslambda_simple.models:LambdaSimpleBackend.invoke",
    "run Lambda tasks with in-process Python handlers",
    (
        params(
            "moto.awslambda_simple.models:LambdaSimpleBackend.invoke",
            "self",
            "function_name",
            "qualifier",
            "body",
            "headers",
            "response_headers",
        ),
        source_has("moto.awslambda.utils", "from moto.awslambda_simple.models import lambda_simple_backends"),
    ),
)

START_EXECUTION = MotoPatch(
    "start-execution-test-case",
    f"{_SFN}.models:StepFunctionsParserBackend.start_execution",
    "MockConfigFile test cases: start '<arn or name>#<TestCase>'",
    (
        params(
            f"{_SFN}.models:StepFunctionsParserBackend.start_execution",
            "self",
            "state_machine_arn",
            "name",
            "execution_input",
            "trace_header",
        ),
        params(f"{_SFN}.models:StepFunctionsParserBackend.describe_state_machine", "self", "arn"),
        params(f"{_SFN}.models:StepFunctionsParserBackend._revision_by_name", "self", "name"),
    ),
)

EXECUTION_WORKER = MotoPatch(
    "execution-worker-test-case",
    f"{_SFN}.backend.execution:Execution._get_start_execution_worker",
    "hand the MockConfigFile test case to the execution's worker",
    (
        params(f"{_SFN}.backend.execution:Execution._get_start_execution_worker", "self"),
        source_has(
            f"{_SFN}.backend.execution_worker:ExecutionWorker", "self._mock_test_case = mock_test_case"
        ),
        source_has(f"{_SFN}.backend.execution_worker:ExecutionWorker", "mock_test_case=self._mock_test_case"),
    ),
)

SYNC_PATTERNS = MotoPatch(
    "sync-for-unsupported-services",
    f"{_UNSUPPORTED}:_SUPPORTED_INTEGRATION_PATTERNS",
    "accept athena / emr-serverless .sync (moto allows them only .waitForTaskToken)",
    (
        Requirement(
            f"{_UNSUPPORTED}:_SUPPORTED_INTEGRATION_PATTERNS is a set",
            lambda: isinstance(resolve(f"{_UNSUPPORTED}:_SUPPORTED_INTEGRATION_PATTERNS"), set),
        ),
        source_has(
            f"{_UNSUPPORTED}:StateTaskServiceUnsupported.__init__",
            "supported_integration_patterns=_SUPPORTED_INTEGRATION_PATTERNS",
        ),
        source_has(f"{_SERVICE}.state_task_service_factory", '"athena"'),
        source_has(f"{_SERVICE}.state_task_service_factory", '"emr-serverless"'),
        exists(f"{_SERVICE}.resource:ResourceCondition.Sync2"),
    ),
)

UNSUPPORTED_WARNING = MotoPatch(
    "quiet-unsupported-warning",
    f"{_UNSUPPORTED}:StateTaskServiceUnsupported._log_unsupported_warning",
    "silence 'Unsupported Optimised service integration' on every parse",
    (params(f"{_UNSUPPORTED}:StateTaskServiceUnsupported._log_unsupported_warning", "self"),),
)

SYNC_WITHOUT_CALLBACK = MotoPatch(
    "sync-without-callback-endpoint",
    f"{_CALLBACK}._eval_integration_pattern",
    "glue .sync passed through to moto: no crash on the missing callback endpoint (LocalStack PR 13706)",
    (
        params(f"{_CALLBACK}._eval_integration_pattern", *_SERVICE_TASK_PARAMS),
        source_matches(
            f"{_CALLBACK}._eval_integration_pattern",
            r"finally:\n(?:\s*#.*\n)*\s*callback_endpoint\.interrupt_all\(\)",
            "still calls callback_endpoint.interrupt_all() unguarded in `finally` (if moto fixed it, drop "
            "this patch)",
        ),
        source_has(
            f"{_CALLBACK}._eval_integration_pattern",
            "if ResourceCondition.WaitForTaskToken in self._supported_integration_patterns:",
        ),
        source_has(f"{_CALLBACK}._eval_integration_pattern", "self.timeout.eval(env=env)"),
        source_has(f"{_CALLBACK}._eval_integration_pattern", "sync_resolver = self._build_sync_resolver("),
        source_has(f"{_CALLBACK}._eval_integration_pattern", "sync_resolver = self._build_sync2_resolver("),
        params(f"{_CALLBACK}._build_sync_resolver", *_SERVICE_TASK_PARAMS),
        params(f"{_CALLBACK}._build_sync2_resolver", *_SERVICE_TASK_PARAMS),
        params(
            f"{_CALLBACK}._eval_sync",
            "self",
            "env",
            "sync_resolver",
            "timeout_seconds",
            "callback_endpoint",
            "heartbeat_endpoint",
        ),
        source_has(
            f"{_CALLBACK}.__init__", "self._supported_integration_patterns = supported_integration_patterns"
        ),
        source_has(f"{_EXECUTE_STATE}:ExecutionState", "self.heartbeat: Heartbeat | None = None"),
    ),
)


def _error_name_site(name: str, module: str) -> MotoPatch:
    return MotoPatch(
        name,
        f"{module}:CustomErrorName",
        "keep a States.* error name (CustomErrorName rejects the 'States.' prefix)",
        (is_(f"{module}:CustomErrorName", _CUSTOM_ERROR_NAME), source_has(module, "CustomErrorName(")),
    )


PARALLEL_ERROR_NAME = _error_name_site(
    "error-name-parallel", f"{_ASL}.state.exec.state_parallel.branches_decl"
)
MAP_ERROR_NAME = _error_name_site("error-name-map", f"{_ASL}.state.exec.state_map.iteration.iteration_worker")
MOCK_THROW_ERROR_NAME = _error_name_site("error-name-mock-throw", f"{_TASK}.mock_eval_utils")

ROUTE_SERVICE_TASKS = MotoPatch(
    "route-service-tasks",
    f"{_SERVICE}.state_task_service:StateTaskService._eval_execution",
    "send service integrations to service_handlers",
    (
        params(f"{_SERVICE}.state_task_service:StateTaskService._eval_execution", "self", "env"),
        params(f"{_SERVICE}.state_task_service:StateTaskService._eval_service_task", *_SERVICE_TASK_PARAMS),
        source_has(f"{_SERVICE}.state_task_service:StateTaskService", "self._eval_service_task("),
        source_matches(
            f"{_CALLBACK}._after_eval_execution",
            r"self\._eval_integration_pattern\(\s*env=env,",
            "calls self._eval_integration_pattern with keyword arguments",
        ),
        source_has(f"{_SERVICE}.resource:ServiceResource", "self.service_name ="),
        source_has(f"{_SERVICE}.resource:ServiceResource", "self.api_name ="),
        source_has(f"{_SERVICE}.resource:Resource", "self.resource_arn ="),
        params(f"{_ENVIRONMENT}.is_mocked_mode", "self"),
        source_has(f"{_ENVIRONMENT}.__init__", "self.stack = []"),
    ),
)

STATE_TIMEOUT = MotoPatch(
    "state-timeout-cancels-task",
    f"{_EXECUTE_STATE}:ExecutionState._evaluate_with_timeout",
    "a state that times out stops its handler (cancels its TaskSlot)",
    (
        params(f"{_EXECUTE_STATE}:ExecutionState._evaluate_with_timeout", "self", "env"),
        source_has(f"{_EXECUTE_STATE}:ExecutionState._evaluate_with_timeout", "raise EvalTimeoutError()"),
        is_(f"{_EXECUTE_STATE}:EvalTimeoutError", f"{_ASL}.common.timeouts.timeout:EvalTimeoutError"),
        source_has(f"{_ASL}.state.state:CommonStateField", "self.name = state_props.name"),
    ),
)

STATE_THREAD = MotoPatch(
    "state-thread-carries-slot",
    f"{_EXECUTE_STATE}:Thread",
    "the thread that evaluates a state runs inside the state's TaskSlot",
    (
        is_(f"{_EXECUTE_STATE}:Thread", "threading:Thread"),
        source_has(f"{_EXECUTE_STATE}:ExecutionState._evaluate_with_timeout", "Thread(target="),
    ),
)


def _sleeps(name: str, module: str, purpose: str) -> MotoPatch:
    # `resolve("time:")` is the time module itself.
    return MotoPatch(
        name, f"{module}:time", purpose, (is_(f"{module}:time", "time:"), source_has(module, "time.sleep("))
    )


RETRY_TIME = _sleeps(
    "scaled-retry-interval", f"{_ASL}.common.retry.retrier_decl", "time_scale: Retry intervals"
)
SYNC_POLL_TIME = _sleeps(
    "scaled-sync-polling", f"{_SERVICE}.state_task_service_callback", "time_scale: .sync polling"
)

WAIT_INTERVAL = MotoPatch(
    "scaled-wait-state",
    f"{_ASL}.state.wait.wait_function.wait_function:WaitFunction._wait_interval",
    "time_scale: Wait states",
    (
        params(
            f"{_ASL}.state.wait.wait_function.wait_function:WaitFunction._wait_interval",
            "self",
            "env",
            "wait_seconds",
        ),
        params(f"{_ENVIRONMENT}.is_running", "self"),
        source_has(f"{_ENVIRONMENT}.__init__", "self.program_state_event = threading.Event()"),
    ),
)

_ASL_PARSER = f"{_SFN}.asl.parse.asl_parser"
ASL_PARSE = MotoPatch(
    "asl-parse-tree-cache",
    f"{_ASL_PARSER}:AmazonStateLanguageParser.parse",
    "parse a definition's text once per process (create_state_machine and every execution parse it again)",
    (
        params(f"{_ASL_PARSER}:AmazonStateLanguageParser.parse", "definition"),
        source_has(f"{_ASL_PARSER}:AmazonStateLanguageParser.parse", "tree = parser.state_machine()"),
        source_has(f"{_ASL_PARSER}:AmazonStateLanguageParser.parse", "program = preprocessor.visit(tree)"),
        source_has(f"{_ASL_PARSER}:AmazonStateLanguageParser.parse", "return program, tree"),
        is_(f"{_ASL_PARSER}:Preprocessor", f"{_SFN}.asl.parse.preprocessor:Preprocessor"),
    ),
)

PATCHES: tuple[MotoPatch, ...] = (
    USER_CONFIG,
    ASL_PARSE,
    LAMBDA_INVOKE,
    START_EXECUTION,
    EXECUTION_WORKER,
    SYNC_PATTERNS,
    UNSUPPORTED_WARNING,
    SYNC_WITHOUT_CALLBACK,
    PARALLEL_ERROR_NAME,
    MAP_ERROR_NAME,
    MOCK_THROW_ERROR_NAME,
    ROUTE_SERVICE_TASKS,
    STATE_TIMEOUT,
    STATE_THREAD,
    RETRY_TIME,
    SYNC_POLL_TIME,
    WAIT_INTERVAL,
)

MOCK_CONFIG_MODEL = MotoContract(
    "mock-config-model",
    f"{_MOCK_CONFIG}:MockTestCase",
    "build MockConfigFile test cases (build_mock_test_case)",
    (
        params(f"{_MOCK_CONFIG}:MockedResponseReturn", "range_start", "range_end", "payload"),
        params(f"{_MOCK_CONFIG}:MockedResponseThrow", "range_start", "range_end", "error", "cause"),
        params(
            f"{_MOCK_CONFIG}:StateMockedResponses", "state_name", "mocked_response_name", "mocked_responses"
        ),
        params(
            f"{_MOCK_CONFIG}:MockTestCase",
            "state_machine_name",
            "test_case_name",
            "state_mocked_responses_list",
        ),
        source_has(f"{_MOCK_CONFIG}:MockTestCase", "self.state_mocked_responses"),
    ),
)

ERROR_NAMES = MotoContract(
    "error-names",
    f"{_ERROR_NAME}.states_error_name:StatesErrorName.from_name",
    "build an ErrorName for any error, States.* included (sfn._error_name)",
    (
        params(f"{_ERROR_NAME}.states_error_name:StatesErrorName.from_name", "error_name"),
        params(f"{_ERROR_NAME}.error_name:ErrorName.__init__", "self", "error_name"),
        params(_CUSTOM_ERROR_NAME, "error_name"),
    ),
)

TASK_FAILURE = MotoContract(
    "task-failure",
    f"{_ERROR_NAME}.failure_event:FailureEventException",
    "fail a task with a handler's error name and cause (sfn._failure)",
    (
        params(f"{_ERROR_NAME}.failure_event:FailureEventException", "failure_event"),
        params(
            f"{_ERROR_NAME}.failure_event:FailureEvent", "env", "error_name", "event_type", "event_details"
        ),
        exists(f"{_SFN}.api:HistoryEventType.TaskFailed"),
        exists(f"{_SFN}.api:TaskFailedEventDetails"),
        params(f"{_SERVICE}.state_task_service:StateTaskService._get_sfn_resource", "self"),
        params(f"{_SERVICE}.state_task_service:StateTaskService._get_sfn_resource_type", "self"),
    ),
)

CONTRACTS: tuple[MotoContract, ...] = (MOCK_CONFIG_MODEL, ERROR_NAMES, TASK_FAILURE)

ALL: tuple[MotoContract, ...] = PATCHES + CONTRACTS

if len({entry.name for entry in ALL}) != len(ALL):  # pragma: no cover - a typo in this module
    raise RuntimeError("moto patch names must be unique")
