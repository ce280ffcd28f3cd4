"""IAM, locally: the roles of template.yaml as policy statements, and AWS's evaluation logic over them.

`PolicyModel.load()` reads template.yaml and resolves, for every role the stack creates:

- explicit `AWS::IAM::Role` resources (inline `Policies`, `ManagedPolicyArns`);
- SAM's implicit function roles `<FunctionLogicalId>Role`, built as aws-sam-translator builds them:
  AWSLambdaBasicExecutionRole, AWSXrayWriteOnlyAccess when tracing is active, the function's `Policies`
  (inline statements and `!Ref` to an `AWS::IAM::ManagedPolicy`), AWSLambdaSQSQueueExecutionRole for an
  SQS event source, and the dead-letter-queue statement. SAM policy templates (`S3CrudPolicy`...) are
  refused with a clear error: the template uses none, and guessing their expansion would be wrong;
- the KMS key policies (`AWS::KMS::Key` `KeyPolicy`).

Intrinsics (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::If`, `Fn::Select`) resolve to the local names
(`lakehouse.local.project.LOCAL_RESOURCE_NAMES`, account 000000000000, us-east-1), and ARNs are built as
AWS builds them (`arn:aws:s3:::lake`, `arn:aws:dynamodb:us-east-1:000000000000:table/leases`, the Lambda
alias ARN for `!Ref Fn.Alias`...).

`evaluate()` is the identity-policy part of AWS's evaluation logic: an explicit Deny wins, then any Allow,
else the request is implicitly denied. Action/NotAction, Resource/NotResource, `*` and `?` wildcards
(actions case-insensitive), and these condition operators: String*, Arn*, Bool, Null, Numeric*, each with
`IfExists`, and the `ForAnyValue:`/`ForAllValues:` set qualifiers. An unknown operator denies, naming it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from lakehouse.local.project import ACCOUNT_ID, LOCAL_RESOURCE_NAMES, REGION, Project

__all__ = [
    "ACCOUNT_ID",
    "PARTITION",
    "REGION",
    "PolicyError",
    "PolicyModel",
    "Principal",
    "Request",
    "evaluate",
]

PARTITION = "aws"
STACK_NAME = "lakehouse-local"
ALIAS = "live"

# The AWS managed policies the template's roles use (their documents as AWS publishes them).
MANAGED_POLICIES: dict[str, list[dict[str, Any]]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        {
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ],
            "Resource": "*",
        }
    ],
}
LAMBDA_BASIC = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
XRAY_WRITE = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
SQS_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"


class PolicyError(ValueError):
    """The template holds something this evaluator does not model (it says what)."""


# -- statements and their evaluation ----------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


@lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM wildcards: `*` any run of characters (colons and slashes too), `?` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).match(value) is not None


@lru_cache(maxsize=4096)
def _any_glob(patterns: tuple[str, ...], ignore_case: bool) -> re.Pattern[str]:
    """One regex for a list of patterns (a statement's Action or Resource list)."""
    body = "|".join(_glob(p, ignore_case).pattern[1:-1] for p in patterns)
    return re.compile(f"^(?:{body})$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _any_match(patterns: tuple[str, ...], value: str, ignore_case: bool) -> bool:
    return bool(patterns) and _any_glob(patterns, ignore_case).match(value) is not None


_ARN_PARTS = 6  # arn:partition:service:region:account:resource


def arn_like(pattern: str, value: str) -> bool:
    """ArnLike: each of the six colon-separated parts matches on its own (the resource part may hold
    colons)."""
    p_parts, v_parts = pattern.split(":", _ARN_PARTS - 1), value.split(":", _ARN_PARTS - 1)
    if len(p_parts) != _ARN_PARTS or len(v_parts) != _ARN_PARTS:
        return glob_match(pattern, value)
    return all(glob_match(p, v) for p, v in zip(p_parts, v_parts, strict=True))


@dataclass(frozen=True)
class Statement:
    """One policy statement, its intrinsics resolved."""

    policy: str  # where it comes from: "<role>/<policy name>" or "<key>/KeyPolicy"
    index: int
    sid: str
    effect: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    condition: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    principals: Mapping[str, tuple[str, ...]] | None = None  # resource-based policies only

    @property
    def label(self) -> str:
        return f"{self.policy}#{self.sid or self.index}"

    @classmethod
    def parse(cls, raw: Mapping[str, Any], policy: str, index: int) -> Statement:
        effect = str(raw.get("Effect", ""))
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"{policy} statement {index}: Effect must be Allow or Deny, got {effect!r}")
        condition: dict[str, dict[str, tuple[str, ...]]] = {}
        for operator, body in (raw.get("Condition") or {}).items():
            if not isinstance(body, Mapping):
                raise PolicyError(f"{policy} statement {index}: condition {operator} must be a mapping")
            condition[str(operator)] = {
                str(k): tuple(_scalar(v) for v in _as_list(vals)) for k, vals in body.items()
            }
        principals = None
        if "Principal" in raw:
            value = raw["Principal"]
            principals = (
                {"*": ("*",)}
                if value == "*"
                else {str(k): tuple(str(v) for v in _as_list(vals)) for k, vals in value.items()}
            )
        return cls(
            policy=policy,
            index=index,
            sid=str(raw.get("Sid") or ""),
            effect=effect,
            actions=tuple(str(a) for a in _as_list(raw.get("Action"))),
            not_actions=tuple(str(a) for a in _as_list(raw.get("NotAction"))),
            resources=tuple(str(r) for r in _as_list(raw.get("Resource"))),
            not_resources=tuple(str(r) for r in _as_list(raw.get("NotResource"))),
            condition=condition,
            principals=principals,
        )

    def matches_action(self, action: str) -> bool:
        if self.actions:
            return _any_match(self.actions, action, True)
        return bool(self.not_actions) and not _any_match(self.not_actions, action, True)

    def action_patterns(self, action: str) -> list[str]:
        """The Action entries that match `action` (what the unused-grants report counts)."""
        if self.actions:
            return [p for p in self.actions if glob_match(p, action, ignore_case=True)]
        return ["NotAction"] if self.matches_action(action) else []

    def matches_resource(self, resource: str) -> bool:
        if self.resources:
            return _any_match(self.resources, resource, False)
        return bool(self.not_resources) and not _any_match(self.not_resources, resource, False)

    def matches_principal(self, principal: Principal | None) -> bool:
        if self.principals is None:
            return True  # an identity policy: the principal is the role it is attached to
        if principal is None:
            return False
        for kind, values in self.principals.items():
            for value in values:
                if kind == "*" or value == "*":
                    return True
                if kind == "Service" and principal.service == value:
                    return True
                # The account root is not the role: a key policy's root grant delegates to IAM, which
                # the caller evaluates separately (lakehouse.local.enforce.kms_allows).
                if kind == "AWS" and principal.arn is not None and value == principal.arn:
                    return True
        return False


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a role (by ARN) or an AWS service principal."""

    arn: str | None = None
    service: str | None = None

    @property
    def account_root(self) -> str | None:
        if self.arn is None:
            return None
        account = self.arn.split(":")[4]
        return f"arn:{PARTITION}:iam::{account}:root"


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    denied_by: Statement | None = None  # an explicit Deny
    allowed_by: tuple[Statement, ...] = ()

    @property
    def explicit_deny(self) -> bool:
        return self.denied_by is not None


def evaluate(
    statements: Iterable[Statement], request: Request, principal: Principal | None = None
) -> Decision:
    """Explicit Deny > Allow > implicit deny, over every statement that applies to the request."""
    allows: list[Statement] = []
    context = {k.lower(): v for k, v in request.context.items()}
    for st in statements:
        if not (st.matches_principal(principal) and st.matches_action(request.action)):
            continue
        if not st.matches_resource(request.resource) or not conditions_hold(st, context):
            continue
        if st.effect == "Deny":
            return Decision(False, denied_by=st)
        allows.append(st)
    return Decision(bool(allows), allowed_by=tuple(allows))


_Test = Callable[[str, str], bool]
_STRING_OPS: dict[str, _Test] = {
    "StringEquals": lambda p, v: p == v,
    "StringNotEquals": lambda p, v: p == v,
    "StringEqualsIgnoreCase": lambda p, v: p.lower() == v.lower(),
    "StringNotEqualsIgnoreCase": lambda p, v: p.lower() == v.lower(),
    "StringLike": lambda p, v: glob_match(p, v),
    "StringNotLike": lambda p, v: glob_match(p, v),
    "ArnEquals": lambda p, v: p == v,
    "ArnNotEquals": lambda p, v: p == v,
    "ArnLike": arn_like,
    "ArnNotLike": arn_like,
    "Bool": lambda p, v: p.lower() == v.lower(),
    "NumericEquals": lambda p, v: float(v) == float(p),
    "NumericNotEquals": lambda p, v: float(v) == float(p),
    "NumericLessThan": lambda p, v: float(v) < float(p),
    "NumericLessThanEquals": lambda p, v: float(v) <= float(p),
    "NumericGreaterThan": lambda p, v: float(v) > float(p),
    "NumericGreaterThanEquals": lambda p, v: float(v) >= float(p),
}
_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike"}
_NEGATED |= {"NumericNotEquals"}


def conditions_hold(st: Statement, context: Mapping[str, Any]) -> bool:
    """Every operator holds (AND); within one, every key holds (AND); a key holds if any value does (OR)."""
    for operator, keys in st.condition.items():
        for key, values in keys.items():
            if not _condition(operator, key.lower(), values, context, st):
                return False
    return True


def _condition(
    operator: str, key: str, values: Sequence[str], context: Mapping[str, Any], st: Statement
) -> bool:
    qualifier, _, op = operator.rpartition(":")
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    present = key in context and context[key] is not None
    if op == "Null":
        wants_absent = any(v.lower() == "true" for v in values)
        return wants_absent != present
    test = _STRING_OPS.get(op)
    if test is None or qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise PolicyError(f"{st.label}: condition operator {operator!r} is not supported by the evaluator")
    negated = op in _NEGATED
    if not present:
        # AWS: an absent key makes a condition false, a negated one true; IfExists makes it true.
        return if_exists or negated or qualifier == "ForAllValues"
    actual = [_scalar(v) for v in _as_list(context[key])]
    if qualifier == "ForAllValues":
        return all(any(test(p, a) for p in values) != negated for a in actual)
    hit = any(test(p, a) for p in values for a in actual)
    return not hit if negated else hit


# -- the template's roles -------------------------------------------------------------------------


def function_alias_arn(name: str) -> str:
    return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:function:{name}:{ALIAS}"


def key_id(logical_id: str) -> str:
    """A stable, KMS-shaped key id for a key's logical id."""
    h = hashlib.sha256(logical_id.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class Resolver:
    """CloudFormation intrinsics → local values, with ARNs as AWS builds them."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str]) -> None:
        self.template = template
        self.resources: Mapping[str, Any] = template.get("Resources") or {}
        defaults = {
            k: str((v or {}).get("Default", "")) for k, v in (template.get("Parameters") or {}).items()
        }
        self.parameters = {**defaults, **parameters}
        self.pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": PARTITION,
            "AWS::StackName": STACK_NAME,
            "AWS::URLSuffix": "amazonaws.com",
        }

    def type_of(self, logical_id: str) -> str:
        res = self.resources.get(logical_id)
        return str(res.get("Type", "")) if isinstance(res, Mapping) else ""

    def props(self, logical_id: str) -> Mapping[str, Any]:
        res = self.resources.get(logical_id)
        props = res.get("Properties") if isinstance(res, Mapping) else None
        return props if isinstance(props, Mapping) else {}

    def name(self, logical_id: str) -> str:
        """The physical name of a resource, locally."""
        if logical_id in LOCAL_RESOURCE_NAMES:
            return LOCAL_RESOURCE_NAMES[logical_id]
        props = self.props(logical_id)
        for key in ("LogGroupName", "RoleName", "FunctionName", "TopicName", "QueueName", "Name"):
            if isinstance(props.get(key), str | dict):
                return str(self.value(props[key]))
        return logical_id

    def ref(self, name: str) -> Any:  # noqa: PLR0911 (one return per pseudo-parameter)
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        base, _, attr = name.partition(".")
        kind = self.type_of(base)
        if attr == "Alias" and kind == "AWS::Serverless::Function":
            return function_alias_arn(self.name(base))
        if kind in ("AWS::SNS::Topic", "AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
            return self.arn(base)
        if kind == "AWS::IAM::ManagedPolicy":
            return f"arn:{PARTITION}:iam::{ACCOUNT_ID}:policy/{self.name(base)}"
        if kind == "AWS::Serverless::LayerVersion":
            return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:layer:{base}:1"
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{self.name(base)}"
        if kind == "AWS::KMS::Key":
            return key_id(base)
        if not kind:
            raise PolicyError(f"!Ref {name}: no such parameter or resource in template.yaml")
        return self.name(base)

    def arn(self, logical_id: str) -> str:
        kind, name = self.type_of(logical_id), self.name(logical_id)
        region, acct = REGION, ACCOUNT_ID
        arns = {
            "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{name}",
            "AWS::DynamoDB::Table": f"arn:{PARTITION}:dynamodb:{region}:{acct}:table/{name}",
            "AWS::SQS::Queue": f"arn:{PARTITION}:sqs:{region}:{acct}:{name}",
            "AWS::KMS::Key": f"arn:{PARTITION}:kms:{region}:{acct}:key/{key_id(logical_id)}",
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{acct}:role/{name}",
            "AWS::Serverless::Function": f"arn:{PARTITION}:lambda:{region}:{acct}:function:{name}",
            "AWS::Serverless::StateMachine": f"arn:{PARTITION}:states:{region}:{acct}:stateMachine:{name}",
            "AWS::StepFunctions::StateMachine": f"arn:{PARTITION}:states:{region}:{acct}:stateMachine:{name}",
            "AWS::Events::Rule": f"arn:{PARTITION}:events:{region}:{acct}:rule/{name}",
            "AWS::Logs::LogGroup": f"arn:{PARTITION}:logs:{region}:{acct}:log-group:{name}:*",
            "AWS::EMRServerless::Application": (
                f"arn:{PARTITION}:emr-serverless:{region}:{acct}:/applications/{name}"
            ),
            "AWS::CloudWatch::Alarm": f"arn:{PARTITION}:cloudwatch:{region}:{acct}:alarm:{name}",
            "AWS::SNS::Topic": f"arn:{PARTITION}:sns:{region}:{acct}:{name}",
        }
        if kind not in arns:
            raise PolicyError(f"!GetAtt {logical_id}.Arn: no ARN format for {kind or 'an unknown resource'}")
        return arns[kind]

    def get_att(self, logical_id: str, attribute: str) -> str:
        if not self.type_of(logical_id):
            raise PolicyError(f"!GetAtt {logical_id}.{attribute}: no such resource in template.yaml")
        if attribute == "Arn":
            return self.arn(logical_id)
        return self.name(logical_id)  # QueueName, ApplicationId, ...: the local name stands in

    def condition(self, name: str) -> bool:
        spec = (self.template.get("Conditions") or {}).get(name)
        if spec is None:
            raise PolicyError(f"Fn::If: no condition {name!r} in template.yaml")
        return bool(self._truth(spec))

    def _truth(self, node: Any) -> bool:
        if isinstance(node, Mapping) and len(node) == 1:
            ((kind, arg),) = node.items()
            if kind == "Fn::Equals":
                return str(self.value(arg[0])) == str(self.value(arg[1]))
            if kind == "Fn::Not":
                return not self._truth(arg[0])
            if kind == "Fn::And":
                return all(self._truth(a) for a in arg)
            if kind == "Fn::Or":
                return any(self._truth(a) for a in arg)
            if kind == "Condition":
                return self.condition(str(arg))
        raise PolicyError(f"cannot evaluate the condition {node!r}")

    def value(self, node: Any) -> Any:  # noqa: PLR0911 (one return per intrinsic function)
        if isinstance(node, list):
            out = [self.value(v) for v in node]
            return [v for v in out if v is not _NO_VALUE]
        if not isinstance(node, Mapping):
            return node
        if len(node) == 1:
            ((kind, arg),) = node.items()
            if kind == "Ref":
                return _NO_VALUE if arg == "AWS::NoValue" else self.ref(str(arg))
            if kind == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.get_att(str(parts[0]), str(parts[1]))
            if kind == "Fn::Sub":
                text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                return self._sub(str(text), variables or {})
            if kind == "Fn::Join":
                return str(arg[0]).join(str(v) for v in self.value(arg[1]))
            if kind == "Fn::If":
                return self.value(arg[1] if self.condition(str(arg[0])) else arg[2])
            if kind == "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
            if kind == "Fn::Split":
                return str(self.value(arg[1])).split(str(arg[0]))
        return {k: self.value(v) for k, v in node.items()}

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token in variables:
                return str(self.value(variables[token]))
            if "." in token and token.split(".", 1)[0] in self.resources:
                res, attr = token.split(".", 1)
                return self.get_att(res, attr)
            return str(self.ref(token))

        return re.sub(r"\$\{([^}!][^}]*)\}", replace, text)


class _NoValue:
    pass


_NO_VALUE = _NoValue()


@dataclass
class Role:
    """A role of the stack and every statement of every policy attached to it."""

    name: str
    statements: list[Statement]

    @property
    def arn(self) -> str:
        return f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{self.name}"

    def allow_statements(self) -> list[Statement]:
        return [s for s in self.statements if s.effect == "Allow"]


@dataclass
class PolicyModel:
    """Every role of template.yaml (by role logical id), which function/machine/job uses which."""

    resolver: Resolver
    roles: dict[str, Role]
    function_roles: dict[str, str]
    machine_roles: dict[str, str]
    glue_job_roles: dict[str, str]  # the job's name -> role
    key_policies: dict[str, list[Statement]]

    @classmethod
    def load(cls, root: Path | None = None, parameters: Mapping[str, str] | None = None) -> PolicyModel:
        project = Project.load(root)
        return cls.from_template(project.template, parameters or {})

    @classmethod
    def from_template(cls, template: Mapping[str, Any], parameters: Mapping[str, str]) -> PolicyModel:
        resolver = Resolver(template, parameters)
        model = cls(resolver, {}, {}, {}, {}, {})
        for logical_id, res in resolver.resources.items():
            kind = res.get("Type") if isinstance(res, Mapping) else None
            if kind == "AWS::IAM::Role":
                model.roles[logical_id] = model._explicit_role(logical_id)
            elif kind == "AWS::KMS::Key":
                raw = resolver.value(resolver.props(logical_id).get("KeyPolicy") or {})
                model.key_policies[logical_id] = _statements(raw, f"{logical_id}/KeyPolicy")
        for logical_id, res in resolver.resources.items():
            kind = res.get("Type") if isinstance(res, Mapping) else None
            if kind == "AWS::Serverless::Function":
                model.function_roles[logical_id] = model._function_role(logical_id)
            elif kind in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
                model.machine_roles[logical_id] = model._role_property(logical_id, "Role", "RoleArn")
            elif kind == "AWS::Glue::Job":
                model.glue_job_roles[resolver.name(logical_id)] = model._role_property(logical_id, "Role")
        return model

    def role(self, name: str) -> Role:
        try:
            return self.roles[name]
        except KeyError:
            raise PolicyError(
                f"template.yaml has no role {name!r}; roles: {', '.join(sorted(self.roles))}"
            ) from None

    def role_by_arn(self, arn: str) -> Role:
        """The role an ARN (`arn:aws:iam::...:role/<name>`, or a local stand-in ending in the name) names."""
        return self.role(re.split(r"[:/]", arn)[-1])

    def _role_property(self, logical_id: str, *keys: str) -> str:
        props = self.resolver.props(logical_id)
        for key in keys:
            ref = props.get(key)
            if isinstance(ref, Mapping) and "Fn::GetAtt" in ref:
                target = ref["Fn::GetAtt"]
                return str(target[0] if isinstance(target, list) else str(target).split(".")[0])
            if isinstance(ref, Mapping) and "Ref" in ref:
                return str(ref["Ref"])
        raise PolicyError(f"{logical_id}: its role must be `!GetAtt <Role>.Arn` of a role in the template")

    def _explicit_role(self, logical_id: str) -> Role:
        props = self.resolver.props(logical_id)
        statements: list[Statement] = []
        for policy in props.get("Policies") or []:
            doc = self.resolver.value(policy.get("PolicyDocument") or {})
            statements += _statements(doc, f"{logical_id}/{policy.get('PolicyName', 'inline')}")
        for arn in props.get("ManagedPolicyArns") or []:
            statements += self._managed(arn, logical_id)
        return Role(self.resolver.name(logical_id), statements)

    def _managed(self, node: Any, role: str) -> list[Statement]:
        if isinstance(node, Mapping) and "Ref" in node:
            target = str(node["Ref"])
            if self.resolver.type_of(target) != "AWS::IAM::ManagedPolicy":
                raise PolicyError(f"{role}: !Ref {target} is not an AWS::IAM::ManagedPolicy")
            doc = self.resolver.value(self.resolver.props(target).get("PolicyDocument") or {})
            return _statements(doc, f"{role}/{target}")
        arn = str(self.resolver.value(node))
        if not arn.startswith("arn:"):
            arn = next((a for a in MANAGED_POLICIES if a.endswith("/" + arn)), arn)
        if arn not in MANAGED_POLICIES:
            raise PolicyError(f"{role}: the AWS managed policy {arn} is not modeled (lakehouse.local.iam)")
        return _statements({"Statement": MANAGED_POLICIES[arn]}, f"{role}/{arn.rsplit('/', 1)[-1]}")

    def _function_role(self, fn: str) -> str:
        """SAM's implicit `<Function>Role` (or the function's own `Role`)."""
        props = self.resolver.props(fn)
        if props.get("Role"):
            return self._role_property(fn, "Role")
        globals_fn = (self.resolver.template.get("Globals") or {}).get("Function") or {}
        role = f"{fn}Role"
        statements = self._managed(LAMBDA_BASIC, role)
        if (props.get("Tracing") or globals_fn.get("Tracing")) == "Active":
            statements += self._managed(XRAY_WRITE, role)
        for index, policy in enumerate(_as_list(props.get("Policies"))):
            statements += self._function_policy(role, index, policy)
        events = props.get("Events") or {}
        if any((e or {}).get("Type") == "SQS" for e in events.values()):
            statements += self._managed(SQS_EXECUTION, role)
        dlq = props.get("DeadLetterQueue") or globals_fn.get("DeadLetterQueue")
        if isinstance(dlq, Mapping):
            action = {"SQS": "sqs:SendMessage", "SNS": "sns:Publish"}[str(dlq.get("Type"))]
            doc = {"Statement": [{"Effect": "Allow", "Action": action, "Resource": dlq.get("TargetArn")}]}
            statements += _statements(self.resolver.value(doc), f"{role}/DeadLetterQueuePolicy")
        self.roles[role] = Role(role, statements)
        return role

    def _function_policy(self, role: str, index: int, policy: Any) -> list[Statement]:
        if isinstance(policy, str) or (isinstance(policy, Mapping) and "Ref" in policy):
            return self._managed(policy, role)
        if isinstance(policy, Mapping) and "Statement" in policy:
            return _statements(self.resolver.value(policy), f"{role}/{role}Policy{index}")
        name = next(iter(policy)) if isinstance(policy, Mapping) and policy else policy
        raise PolicyError(
            f"{role}: the SAM policy template {name!r} is not modeled by lakehouse.local.iam; "
            "write the statements inline (Policies: - Statement: ...)"
        )

    def key_arn(self, logical_id: str) -> str:
        return self.resolver.arn(logical_id)


def _statements(doc: Any, policy: str) -> list[Statement]:
    raw = doc.get("Statement") if isinstance(doc, Mapping) else None
    return [Statement.parse(st, policy, i) for i, st in enumerate(_as_list(raw))]


def iter_grants(role: Role) -> Iterator[tuple[Statement, str]]:
    """Every (Allow statement, Action entry) of a role: the unit the unused-grants report counts."""
    for st in role.allow_statements():
        for action in st.actions or ("NotAction",):
            yield st, action
