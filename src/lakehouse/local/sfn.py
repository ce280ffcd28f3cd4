"""Run a real ASL definition in-process with moto's Step Functions interpreter.

`LocalStateMachine` wraps ``moto.stepfunctions.parser`` (pinned: moto 5.2.5), started through moto's
public config, and, while it is entered, patches private names so that:

- Lambda tasks (plain function ARNs and ``lambda:invoke``) call in-process Python handlers;
- other service integrations (``glue:startJobRun.sync``, ``athena:startQueryExecution.sync``,
  ``sns:publish``...) call ``service_handlers`` keyed by ``"<service>:<action>[.<pattern>]"``;
- AWS Step Functions Local ``MockConfigFile`` test cases work (``start(..., test_case=...)``);
- athena / emr-serverless ``.sync`` are accepted and the ``glue .sync`` crash is fixed
  (LocalStack PR 13706), for services passed through to moto with ``moto_services``;
- Retry intervals, Wait states and ``.sync`` polling can be sped up with ``time_scale``.

Every patch goes through `lakehouse.local.moto_patches`: each is a named object that checks the moto
version and the internals it relies on before it is installed (tests/unit/test_moto_patches.py checks
them all). Every patch is undone on exit. Only one `LocalStateMachine` may be entered at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from lakehouse.local import moto_patches
from lakehouse.local.project import ACCOUNT_ID, REGION

TaskHandler = Callable[[str, dict[str, Any]], Any]
"""A service-integration handler: ``(service_action, parameters) -> result``; raises on failure."""

LambdaHandler = Callable[[dict[str, Any], Any], Any]
"""A Lambda handler: ``(event, context) -> result``."""

ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/local-step-functions"
NO_ROUTE_ERROR = "Local.NoRoute"

_ACTIVE_LOCK = threading.Lock()
_active: LocalStateMachine | None = None


class TaskFailed(Exception):  # noqa: N818 - the name reads as the outcome, like Step Functions' TaskFailed
    """Raise from a handler to fail the task with an explicit Step Functions error name."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause


class UnroutedTaskError(RuntimeError):
    """A Task state has no handler, no mocked response and is not passed through to moto."""


@dataclass(frozen=True)
class StateVisit:
    """One entry into a state (states inside Map/Parallel appear once per iteration/branch)."""

    name: str
    entered: datetime
    exited: datetime | None

    @property
    def duration_s(self) -> float | None:
        return None if self.exited is None else (self.exited - self.entered).total_seconds()


@dataclass(frozen=True)
class ExecutionResult:
    """The outcome of one execution, with its full event history."""

    execution_arn: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    history: list[dict[str, Any]] = field(repr=False)
    states_visited: list[StateVisit] = field(repr=False)

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    @property
    def visited_names(self) -> list[str]:
        return [visit.name for visit in self.states_visited]


@dataclass
class LocalLambdaContext:
    """Enough of the Lambda context object for handlers and Powertools."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    timeout_s: float = 900.0
    started: float = field(default_factory=time.monotonic)

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


def substitute(definition: str, substitutions: Mapping[str, str]) -> str:
    """Apply SAM-style ``${Name}`` DefinitionSubstitutions."""
    for key, value in substitutions.items():
        definition = definition.replace("${" + key + "}", value)
    return definition


def service_key(resource: str) -> str:
    """``arn:aws:states:::glue:startJobRun.sync`` -> ``glue:startJobRun.sync``."""
    return ":".join(resource.split(":")[5:])


def function_name(name_or_arn: str) -> str:
    """A Lambda function name from a name, a (qualified) name or a function ARN."""
    if name_or_arn.startswith("arn:"):
        return name_or_arn.split(":")[6]
    return name_or_arn.split(":")[0]


def build_mock_test_case(mock_config: Mapping[str, Any], state_machine: str, test_case: str) -> Any:
    """Build moto's ``MockTestCase`` from a parsed Step Functions Local MockConfigFile."""
    from moto.stepfunctions.parser.mocking.mock_config import (
        MockedResponse,
        MockedResponseReturn,
        MockedResponseThrow,
        MockTestCase,
        StateMockedResponses,
    )

    try:
        states = mock_config["StateMachines"][state_machine]["TestCases"][test_case]
    except KeyError:
        raise ValueError(f"mock config has no test case {state_machine}#{test_case}") from None
    per_state = []
    for state_name, response_name in states.items():
        definitions = mock_config.get("MockedResponses", {}).get(response_name)
        if not definitions:
            raise ValueError(f"mock config has no MockedResponses[{response_name!r}] (state {state_name!r})")
        responses: list[MockedResponse] = []
        for span, spec in definitions.items():
            start, _, end = str(span).partition("-")
            first, last = int(start), int(end or start)
            if "Return" in spec:
                responses.append(MockedResponseReturn(first, last, spec["Return"]))
            elif "Throw" in spec:
                throw = spec["Throw"]
                responses.append(MockedResponseThrow(first, last, throw["Error"], throw.get("Cause", "")))
            else:
                raise ValueError(f"MockedResponses[{response_name!r}][{span!r}] needs Return or Throw")
        per_state.append(StateMockedResponses(state_name, response_name, responses))
    return MockTestCase(state_machine, test_case, per_state)


def _task_states(states: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        if state.get("Type") == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from _task_states(branch.get("States", {}))
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _task_states(processor.get("States", {}))


def _sync_without_callback(original: Callable[..., None]) -> Callable[..., None]:
    """moto's ``_eval_integration_pattern``, fixed as in LocalStack PR 13706, without editing its source.

    A service without ``.waitForTaskToken`` support (Glue) has no callback endpoint, and moto's
    ``finally`` calls ``callback_endpoint.interrupt_all()`` on None, replacing the ``.sync`` outcome with
    an AttributeError. Without an endpoint (and without a heartbeat) the method reduces to: the timeout,
    the sync resolver, ``_eval_sync``, push its outcome or raise its error; that is what runs here.
    Everything else goes to moto's own method. `moto_patches.SYNC_WITHOUT_CALLBACK` pins the shape of
    moto's method this mirrors.
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
        ResourceCondition,
    )

    def eval_integration_pattern(
        task: Any, env: Any, resource_runtime_part: Any, normalised_parameters: Any, state_credentials: Any
    ) -> None:
        arguments = {
            "env": env,
            "resource_runtime_part": resource_runtime_part,
            "normalised_parameters": normalised_parameters,
            "state_credentials": state_credentials,
        }
        condition = task.resource.condition
        has_endpoint = ResourceCondition.WaitForTaskToken in task._supported_integration_patterns
        if (
            has_endpoint
            or task.heartbeat
            or condition not in (ResourceCondition.Sync, ResourceCondition.Sync2)
        ):
            original(task, **arguments)
            return
        task_output = env.stack.pop()
        task.timeout.eval(env=env)
        timeout_seconds = env.stack.pop()
        env.stack.append(task_output)  # .sync resolvers read the task's output
        if condition == ResourceCondition.Sync:
            sync_resolver = task._build_sync_resolver(**arguments)
        else:
            sync_resolver = task._build_sync2_resolver(**arguments)
        outcome = task._eval_sync(
            env=env,
            sync_resolver=sync_resolver,
            timeout_seconds=timeout_seconds,
            callback_endpoint=None,
            heartbeat_endpoint=None,
        )
        env.stack.append(outcome)

    return eval_integration_pattern


def _no_warning(task: Any) -> None:
    """Stands in for ``StateTaskServiceUnsupported._log_unsupported_warning``."""


class _ScaledTime:
    """Stands in for the ``time`` module inside moto modules that sleep."""

    def __init__(self, scale: float) -> None:
        self._scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds * self._scale))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


_PARSE_TREES: dict[str, Any] = {}  # definition text -> its ASL parse tree (definitions that parsed)
_PARSE_TREES_LOCK = threading.Lock()
_PARSE_TREES_MAX = 16


def _cached_parse(original: Callable[[str], tuple[Any, Any]]) -> Callable[[str], tuple[Any, Any]]:
    """moto parses a definition's text with ANTLR (pure Python, 0.2-1 s for the ingest machine) when the
    state machine is created and again for every execution. The parse tree is only read afterwards, so
    it is kept per text; each call still builds fresh evaluation components from it."""
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    def parse(definition: str) -> tuple[Any, Any]:
        with _PARSE_TREES_LOCK:
            tree = _PARSE_TREES.get(definition)
        if tree is None:
            program, tree = original(definition)  # a definition that does not parse raises: not kept
            with _PARSE_TREES_LOCK:
                if len(_PARSE_TREES) >= _PARSE_TREES_MAX:
                    _PARSE_TREES.clear()
                _PARSE_TREES[definition] = tree
            return program, tree
        return Preprocessor().visit(tree), tree

    return parse


class LocalStateMachine:
    """Create one state machine from ASL text and run executions of it, in-process."""

    def __init__(  # noqa: PLR0913 (keyword-only options, each with a default)
        self,
        definition: str,
        *,
        name: str = "ingest",
        substitutions: Mapping[str, str] | None = None,
        lambda_handlers: Mapping[str, LambdaHandler] | None = None,
        service_handlers: Mapping[str, TaskHandler] | None = None,
        mock_config: Mapping[str, Any] | None = None,
        moto_services: frozenset[str] | set[str] = frozenset(),
        time_scale: float = 1.0,
        lambda_timeout_s: float = 900.0,
    ) -> None:
        """
        ``lambda_handlers`` are keyed by function name or ARN; ``service_handlers`` by
        ``"<service>:<action>[.sync]"`` as in the Resource after ``arn:aws:states:::``.
        ``moto_services`` lists services (e.g. ``{"sqs", "dynamodb"}``) whose unhandled tasks go to
        moto's own backends. ``time_scale`` multiplies Retry intervals, Wait states and .sync polling
        (0.0 makes them instant); it does not shorten ``TimeoutSeconds``, because handlers work at real
        speed. A state that times out cancels its `TaskSlot` (`local/worker.py`): the worker process
        running its handler is killed.
        """
        self.definition = substitute(definition, substitutions or {})
        self.name = name
        self.lambda_handlers = {function_name(k): v for k, v in (lambda_handlers or {}).items()}
        self.service_handlers = dict(service_handlers or {})
        self.mock_config = mock_config
        self.moto_services = frozenset(moto_services)
        self.time_scale = time_scale
        self.lambda_timeout_s = lambda_timeout_s
        self.state_machine_arn = ""
        self.unrouted: list[str] = []
        self._stack: contextlib.ExitStack | None = None
        self._client: Any = None
        self._pending_test_case = threading.local()
        self._executions: list[str] = []

    # -- context manager -------------------------------------------------------------------------

    def __enter__(self) -> LocalStateMachine:
        global _active
        if not _ACTIVE_LOCK.acquire(blocking=False):
            raise RuntimeError(f"another LocalStateMachine ({_active and _active.name}) is active")
        _active = self
        stack = contextlib.ExitStack()
        stack.callback(self._release)
        try:
            self._install(stack)
            self._client = _boto3_client("stepfunctions")
            created = self._client.create_state_machine(
                name=self.name, definition=self.definition, roleArn=ROLE_ARN
            )
            self.state_machine_arn = created["stateMachineArn"]
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        try:
            for arn in self._executions:
                with contextlib.suppress(Exception):
                    if self._client.describe_execution(executionArn=arn)["status"] == "RUNNING":
                        self._client.stop_execution(executionArn=arn, error="Local.Shutdown")
        finally:
            stack.close()

    @staticmethod
    def _release() -> None:
        global _active
        _active = None
        _ACTIVE_LOCK.release()

    def _install(self, stack: contextlib.ExitStack) -> None:
        """Start moto through its public config, then install every patch from `moto_patches`."""
        from moto import mock_aws

        moto_patches.ensure_all()  # before the first patch: the checks read moto's own code
        config: Any = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
        # mock_aws does not restore its config when nested inside another mock_aws: restore it ourselves.
        moto_patches.USER_CONFIG.apply(stack, lambda _original: config)
        stack.enter_context(_local_account())
        stack.enter_context(mock_aws(config=config))
        moto_patches.ASL_PARSE.apply(stack, _cached_parse)
        self._install_lambda_and_test_cases(stack)
        self._install_service_tasks(stack)
        self._install_error_names(stack)
        self._install_timeouts(stack)
        if self.time_scale != 1.0:
            self._install_time_scale(stack)

    def _install_lambda_and_test_cases(self, stack: contextlib.ExitStack) -> None:
        # Lambda: every invocation lands in LambdaSimpleBackend.invoke when use_docker is False.
        def invoke(
            backend: Any, fn: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
        ) -> bytes:
            return self._invoke_lambda(fn, body, response_headers)

        moto_patches.LAMBDA_INVOKE.apply(stack, lambda _original: invoke)

        # MockConfigFile test cases: "<arn or name>#<TestCase>".
        def with_test_case(original_start: Callable[..., Any]) -> Callable[..., Any]:
            def start_execution(
                backend: Any,
                arn: str,
                name: Any = None,
                execution_input: Any = None,
                trace_header: Any = None,
            ) -> Any:
                arn, _, case = arn.partition("#")
                if not arn.startswith("arn:"):
                    arn = backend._revision_by_name(arn).arn if backend._revision_by_name(arn) else arn
                test_case = None
                if case:
                    machine_name = backend.describe_state_machine(arn).name
                    test_case = build_mock_test_case(self.mock_config or {}, machine_name, case)
                self._pending_test_case.value = test_case
                try:
                    return original_start(backend, arn, name, execution_input, trace_header)
                finally:
                    self._pending_test_case.value = None

            return start_execution

        def worker_with_test_case(original_worker: Callable[[Any], Any]) -> Callable[[Any], Any]:
            def get_start_execution_worker(execution: Any) -> Any:
                worker = original_worker(execution)
                test_case = getattr(self._pending_test_case, "value", None)
                if test_case is not None:
                    worker._mock_test_case = test_case
                return worker

            return get_start_execution_worker

        moto_patches.START_EXECUTION.apply(stack, with_test_case)
        moto_patches.EXECUTION_WORKER.apply(stack, worker_with_test_case)

    def _install_service_tasks(self, stack: contextlib.ExitStack) -> None:
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
            ResourceCondition,
        )

        # athena / emr-serverless .sync are "unsupported" services that only allow .waitForTaskToken.
        patterns = {ResourceCondition.WaitForTaskToken, ResourceCondition.Sync, ResourceCondition.Sync2}
        moto_patches.SYNC_PATTERNS.apply(stack, lambda _original: patterns)
        # It warns "Unsupported Optimised service integration" on every parse: not useful here.
        moto_patches.UNSUPPORTED_WARNING.apply(stack, lambda _original: _no_warning)
        moto_patches.SYNC_WITHOUT_CALLBACK.apply(stack, _sync_without_callback)

        # Service integrations: route to service_handlers.
        def routed(original_eval_execution: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
            def eval_execution(task: Any, env: Any) -> None:
                self._route_service_task(task, env)
                original_eval_execution(task, env)

            return eval_execution

        moto_patches.ROUTE_SERVICE_TASKS.apply(stack, routed)

    @staticmethod
    def _install_error_names(stack: contextlib.ExitStack) -> None:
        # A States.* error leaving a Parallel branch or Map iteration is re-raised as CustomErrorName,
        # which rejects the "States." prefix: the error became States.Runtime. Keep the name instead.
        moto_patches.PARALLEL_ERROR_NAME.apply(stack, lambda _original: _error_name)
        moto_patches.MAP_ERROR_NAME.apply(stack, lambda _original: _error_name)
        # The same for a MockConfigFile Throw: `{"Error": "States.TaskFailed"}` (how a failed .sync job
        # fails) would otherwise crash into States.Runtime instead of failing the task with that name.
        moto_patches.MOCK_THROW_ERROR_NAME.apply(stack, lambda _original: _error_name)

    def _install_time_scale(self, stack: contextlib.ExitStack) -> None:
        scaled = _ScaledTime(self.time_scale)
        moto_patches.RETRY_TIME.apply(stack, lambda _original: scaled)
        moto_patches.SYNC_POLL_TIME.apply(stack, lambda _original: scaled)
        scale = self.time_scale

        def wait_interval(wait_fn: Any, env: Any, wait_seconds: float) -> None:
            deadline = time.monotonic() + max(0.0, wait_seconds * scale)
            while env.is_running() and (remaining := deadline - time.monotonic()) > 0:
                env.program_state_event.wait(remaining)

        moto_patches.WAIT_INTERVAL.apply(stack, lambda _original: wait_interval)

    def _install_timeouts(self, stack: contextlib.ExitStack) -> None:
        """A timed-out state stops its handler (moto only stops waiting for the thread that runs it).

        moto evaluates a state in a new thread (`execute_state.Thread`) and raises EvalTimeoutError when
        `TimeoutSeconds` pass. The thread is started with the state's `TaskSlot`, so the task it runs
        registers what can be stopped (a worker process, a Spark job group); on timeout the slot is
        cancelled before the error reaches Retry/Catch, so Rollback never runs next to the old handler.
        """
        from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError

        from lakehouse.local.worker import TaskSlot, current_slot, in_slot

        pending = threading.local()

        def cancelling(original_evaluate: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
            def evaluate_with_timeout(state: Any, env: Any) -> None:
                slot = TaskSlot(str(state.name))
                pending.slot = slot
                try:
                    original_evaluate(state, env)
                except EvalTimeoutError:
                    slot.cancel()
                    raise
                finally:
                    pending.slot = None

            return evaluate_with_timeout

        def thread(*, target: Callable[[], None], **kwargs: Any) -> threading.Thread:
            slot = getattr(pending, "slot", None) or current_slot()

            def run() -> None:
                with in_slot(slot):
                    target()

            runner = threading.Thread(target=run, **kwargs)
            if slot is not None:
                slot.runs_in(runner)
            return runner

        moto_patches.STATE_TIMEOUT.apply(stack, cancelling)
        moto_patches.STATE_THREAD.apply(stack, lambda _original: thread)

    # -- routing ---------------------------------------------------------------------------------

    def _invoke_lambda(self, fn: str, body: Any, response_headers: dict[str, str]) -> bytes:
        name = function_name(fn)
        handler = self.lambda_handlers.get(name)
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        event = json.loads(body) if body else {}
        if handler is None:
            self.unrouted.append(f"Lambda function {fn!r}")
            response_headers["x-amz-function-error"] = "Unhandled"
            return _json_bytes({"errorType": NO_ROUTE_ERROR, "errorMessage": f"no handler for Lambda {fn!r}"})
        context = LocalLambdaContext(
            function_name=name,
            invoked_function_arn=fn
            if fn.startswith("arn:")
            else f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}",
            timeout_s=self.lambda_timeout_s,
        )
        try:
            result = handler(event, context)
        except Exception as exc:
            response_headers["x-amz-function-error"] = "Unhandled"
            error, message = _error_of(exc)
            return _json_bytes(
                {
                    "errorType": error,
                    "errorMessage": message,
                    "stackTrace": getattr(exc, "remote_traceback", None)
                    or traceback.format_exception(exc)[1:],
                }
            )
        return _json_bytes(result)

    def _route_service_task(self, task: Any, env: Any) -> None:
        """Bind a service handler onto the task instance before moto evaluates it."""
        resource: str = task.resource.resource_arn
        key = service_key(resource)
        handler = self.service_handlers.get(key)
        if env.is_mocked_mode():
            return
        if handler is not None:

            def eval_service_task(
                env: Any,
                resource_runtime_part: Any,
                normalised_parameters: dict[str, Any],
                state_credentials: Any,
            ) -> None:
                env.stack.append(self._call_service_handler(task, env, key, handler, normalised_parameters))

            task._eval_service_task = eval_service_task
            # The handler returns the final result of a .sync/.waitForTaskToken call: skip moto's polling.
            task._eval_integration_pattern = lambda **_: None
            return
        if task.resource.service_name == "lambda" or task.resource.api_name in self.moto_services:
            return
        self.unrouted.append(f"state {task.name!r} ({resource})")
        raise _failure(
            task,
            env,
            NO_ROUTE_ERROR,
            f"no service handler for {key!r} (state {task.name!r}) and no mocked response",
        )

    def _call_service_handler(
        self, task: Any, env: Any, key: str, handler: TaskHandler, parameters: dict[str, Any]
    ) -> Any:
        try:
            result = handler(key, parameters)
        except Exception as exc:
            error, cause = _error_of(exc)
            raise _failure(task, env, error, cause) from exc
        return json.loads(json.dumps(result, default=str))

    def check_routes(self, test_case: str | None = None) -> None:
        """Raise `UnroutedTaskError` if some Task state could not run (static check of the definition)."""
        mocked: set[str] = set()
        if test_case:
            mocked = set(
                build_mock_test_case(self.mock_config or {}, self.name, test_case).state_mocked_responses
            )
        problems = []
        for state_name, state in _task_states(json.loads(self.definition).get("States", {})):
            resource = str(state.get("Resource", ""))
            if state_name in mocked:
                continue
            key = service_key(resource)
            parts = key.split(":")
            api = parts[1] if parts[0] == "aws-sdk" and len(parts) > 1 else parts[0]
            if key in self.service_handlers or api in self.moto_services:
                continue
            if ":lambda:" in resource and ":function:" in resource:
                fn: str | None = resource
            elif key.startswith("lambda:invoke"):
                fn = state.get("Parameters", {}).get("FunctionName")
            else:
                problems.append(f"state {state_name!r}: no service handler for {key!r}")
                continue
            if fn is not None and function_name(fn) not in self.lambda_handlers:
                problems.append(f"state {state_name!r}: no Lambda handler for {fn!r}")
        if problems:
            raise UnroutedTaskError("; ".join(problems))

    # -- executions ------------------------------------------------------------------------------

    def start(
        self, input: dict[str, Any], *, execution_name: str | None = None, test_case: str | None = None
    ) -> str:
        """Start an execution (optionally of a MockConfigFile test case); return its ARN."""
        if self._client is None:
            raise RuntimeError("LocalStateMachine must be entered (with ...) before start()")
        self.check_routes(test_case)
        arn = self.state_machine_arn + (f"#{test_case}" if test_case else "")
        started = self._client.start_execution(
            stateMachineArn=arn, name=execution_name or uuid.uuid4().hex, input=json.dumps(input)
        )
        execution_arn: str = started["executionArn"]
        self._executions.append(execution_arn)
        return execution_arn

    def wait(self, execution_arn: str, timeout: float = 300) -> ExecutionResult:
        """Block until the execution ends; raise TimeoutError, or UnroutedTaskError if a task had no route."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            described = self._client.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} still RUNNING after {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        if self.unrouted:
            raise UnroutedTaskError("tasks without a route: " + ", ".join(self.unrouted))
        history = self.history(execution_arn)
        output = described.get("output")
        return ExecutionResult(
            execution_arn=execution_arn,
            status=described["status"],
            output=None if output is None else json.loads(output),
            error=described.get("error"),
            cause=described.get("cause"),
            history=history,
            states_visited=states_visited(history),
        )

    def run(
        self,
        input: dict[str, Any],
        *,
        execution_name: str | None = None,
        test_case: str | None = None,
        timeout: float = 300,
    ) -> ExecutionResult:
        """start() then wait()."""
        arn = self.start(input, execution_name=execution_name, test_case=test_case)
        return self.wait(arn, timeout=timeout)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """The execution's history events (as returned by GetExecutionHistory)."""
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn}
        while True:
            page = self._client.get_execution_history(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]


def states_visited(history: list[dict[str, Any]]) -> list[StateVisit]:
    """Pair StateEntered/StateExited events by state name, in entry order."""
    visits: list[tuple[str, datetime, datetime | None]] = []
    open_by_name: dict[str, list[int]] = {}
    for event in history:
        if "stateEnteredEventDetails" in event:
            name = event["stateEnteredEventDetails"]["name"]
            open_by_name.setdefault(name, []).append(len(visits))
            visits.append((name, event["timestamp"], None))
        elif "stateExitedEventDetails" in event:
            name = event["stateExitedEventDetails"]["name"]
            if open_by_name.get(name):
                index = open_by_name[name].pop(0)
                visits[index] = (name, visits[index][1], event["timestamp"])
    return [StateVisit(name, entered, exited) for name, entered, exited in visits]


def _boto3_client(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local")


@contextlib.contextmanager
def _local_account() -> Iterator[None]:
    """moto keeps its resources in account 123456789012 unless told otherwise: the local executions
    live in the account every other local ARN uses (lakehouse.local.project.ACCOUNT_ID)."""
    saved = os.environ.get("MOTO_ACCOUNT_ID")
    os.environ["MOTO_ACCOUNT_ID"] = ACCOUNT_ID
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MOTO_ACCOUNT_ID", None)
        else:
            os.environ["MOTO_ACCOUNT_ID"] = saved


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, default=str).encode("utf-8")


def _error_of(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, TaskFailed):
        return exc.error, exc.cause
    return type(exc).__name__, str(exc)


def _error_name(error_name: str | None) -> Any:
    """An ErrorName for any name: ``States.*`` names are StatesErrorName, others CustomErrorName."""
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName

    if error_name is not None and error_name.startswith("States."):
        with contextlib.suppress(Exception):
            return StatesErrorName.from_name(error_name)
        unknown = CustomErrorName.__new__(CustomErrorName)  # a States.* name moto does not know
        ErrorName.__init__(unknown, error_name=error_name)
        return unknown
    return CustomErrorName(error_name)


def _failure(task: Any, env: Any, error: str, cause: str) -> Exception:
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )

    error_name = _error_name(error)
    details = TaskFailedEventDetails(
        error=error,
        cause=cause,
        resource=task._get_sfn_resource(),
        resourceType=task._get_sfn_resource_type(),
    )
    event_details: Any = {"taskFailedEventDetails": details}
    return FailureEventException(
        FailureEvent(
            env=env,
            error_name=error_name,
            event_type=HistoryEventType.TaskFailed,
            event_details=event_details,
        )
    )
