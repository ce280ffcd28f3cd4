"""The local IAM evaluator against documented IAM behaviour, and the template's roles as it resolves them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lakehouse.local.iam import (
    PolicyError,
    PolicyModel,
    Principal,
    Request,
    Statement,
    arn_like,
    evaluate,
)

ROOT = Path(__file__).resolve().parents[2]


def policy(*statements: dict[str, Any]) -> list[Statement]:
    return [Statement.parse(s, "test", i) for i, s in enumerate(statements)]


def allowed(statements: list[Statement], action: str, resource: str, **context: Any) -> bool:
    return evaluate(statements, Request(action, resource, context)).allowed


# -- evaluation logic (docs: "Policy evaluation logic", "IAM JSON policy elements") -------------------


def test_no_statement_means_implicit_deny() -> None:
    assert not allowed([], "s3:GetObject", "arn:aws:s3:::b/k")


def test_explicit_deny_overrides_any_allow() -> None:
    statements = policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::b/*"},
    )
    assert allowed(statements, "s3:GetObject", "arn:aws:s3:::b/k")
    decision = evaluate(statements, Request("s3:DeleteObject", "arn:aws:s3:::b/k"))
    assert not decision.allowed
    assert decision.explicit_deny


def test_action_wildcards_are_case_insensitive() -> None:
    statements = policy({"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"})
    assert allowed(statements, "s3:GetObject", "arn:aws:s3:::b/k")
    assert allowed(statements, "S3:getobjectversion", "arn:aws:s3:::b/k")
    assert not allowed(statements, "s3:PutObject", "arn:aws:s3:::b/k")


def test_object_arn_wildcard_does_not_cover_the_bucket() -> None:
    """`arn:aws:s3:::b/*` grants object actions only; ListBucket needs the bucket ARN itself."""
    statements = policy(
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "arn:aws:s3:::b/*"}
    )
    assert allowed(statements, "s3:GetObject", "arn:aws:s3:::b/tables/t/x")
    assert not allowed(statements, "s3:ListBucket", "arn:aws:s3:::b")


def test_resource_wildcards_are_case_sensitive_and_question_mark_is_one_char() -> None:
    statements = policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/log-?.txt"})
    assert allowed(statements, "s3:GetObject", "arn:aws:s3:::b/log-1.txt")
    assert not allowed(statements, "s3:GetObject", "arn:aws:s3:::b/log-10.txt")
    assert not allowed(statements, "s3:GetObject", "arn:aws:s3:::B/log-1.txt")


def test_not_action_allows_everything_else() -> None:
    """The documented `NotAction` example: everything but IAM."""
    statements = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert allowed(statements, "s3:GetObject", "arn:aws:s3:::b/k")
    assert not allowed(statements, "iam:CreateUser", "*")


def test_not_resource_denies_outside_the_listed_resources() -> None:
    statements = policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::lake", "arn:aws:s3:::lake/*"]},
    )
    assert allowed(statements, "s3:PutObject", "arn:aws:s3:::lake/tables/x")
    assert not allowed(statements, "s3:PutObject", "arn:aws:s3:::other/x")


def test_list_bucket_with_an_s3_prefix_condition() -> None:
    """The documented home-folder example, without policy variables."""
    statements = policy(
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::b",
            "Condition": {"StringLike": {"s3:prefix": ["", "home/", "home/alice/*"]}},
        }
    )
    assert allowed(statements, "s3:ListBucket", "arn:aws:s3:::b", **{"s3:prefix": "home/alice/docs/"})
    assert not allowed(statements, "s3:ListBucket", "arn:aws:s3:::b", **{"s3:prefix": "home/bob/"})


def test_bool_secure_transport_deny() -> None:
    statements = policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    )
    assert not allowed(statements, "s3:GetObject", "arn:aws:s3:::b/k", **{"aws:SecureTransport": False})
    assert allowed(statements, "s3:GetObject", "arn:aws:s3:::b/k", **{"aws:SecureTransport": True})
    # An absent key makes a (non-negated) condition false: the Deny does not apply.
    assert allowed(statements, "s3:GetObject", "arn:aws:s3:::b/k")


def test_absent_keys_negated_operators_if_exists_and_null() -> None:
    """Docs: an absent key makes a condition false, a negated one (StringNotEquals...) true; `...IfExists`
    is true when the key is absent; `Null: true` holds exactly when it is absent."""

    def one(condition: dict[str, Any]) -> list[Statement]:
        return policy(
            {"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*", "Condition": condition}
        )

    arn = "arn:aws:ec2:us-east-1:1:instance/*"
    assert not allowed(one({"StringEquals": {"ec2:InstanceType": "t3.micro"}}), "ec2:RunInstances", arn)
    assert allowed(one({"StringNotEquals": {"ec2:InstanceType": "t3.micro"}}), "ec2:RunInstances", arn)
    assert allowed(one({"StringEqualsIfExists": {"ec2:InstanceType": ["t3.micro"]}}), "ec2:RunInstances", arn)
    assert not allowed(
        one({"StringEqualsIfExists": {"ec2:InstanceType": ["t3.micro"]}}),
        "ec2:RunInstances",
        arn,
        **{"ec2:InstanceType": "m5.large"},
    )
    assert allowed(one({"Null": {"aws:TokenIssueTime": "true"}}), "ec2:RunInstances", arn)
    assert not allowed(
        one({"Null": {"aws:TokenIssueTime": "true"}}), "ec2:RunInstances", arn, **{"aws:TokenIssueTime": "x"}
    )


def test_multiple_values_or_multiple_keys_and_set_qualifiers() -> None:
    st = policy(
        {
            "Effect": "Allow",
            "Action": "dynamodb:GetItem",
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "aws:RequestedRegion": ["us-east-1", "eu-west-1"],
                    "aws:PrincipalAccount": "1",
                },
                "ForAllValues:StringEquals": {"dynamodb:Attributes": ["id", "name"]},
            },
        }
    )
    ok = {"aws:RequestedRegion": "eu-west-1", "aws:PrincipalAccount": "1", "dynamodb:Attributes": ["id"]}
    assert allowed(st, "dynamodb:GetItem", "t", **ok)
    assert not allowed(st, "dynamodb:GetItem", "t", **{**ok, "aws:PrincipalAccount": "2"})
    assert not allowed(st, "dynamodb:GetItem", "t", **{**ok, "dynamodb:Attributes": ["id", "secret"]})


def test_condition_keys_are_case_insensitive() -> None:
    st = policy(
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*",
         "Condition": {"StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}}}
    )  # fmt: skip
    assert allowed(st, "iam:PassRole", "r", **{"IAM:passedtoservice": "emr-serverless.amazonaws.com"})
    assert not allowed(st, "iam:PassRole", "r", **{"iam:PassedToService": "glue.amazonaws.com"})


def test_arn_like_matches_each_component() -> None:
    assert arn_like("arn:aws:logs:us-east-1:1:log-group:*", "arn:aws:logs:us-east-1:1:log-group:/aws/x:*")
    assert not arn_like("arn:aws:logs:us-east-1:1:log-group:*", "arn:aws:logs:eu-west-1:1:log-group:x")
    assert arn_like("arn:aws:sns:*:1:alerts", "arn:aws:sns:us-east-1:1:alerts")


def test_an_unknown_condition_operator_is_refused_by_name() -> None:
    st = policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                 "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}})  # fmt: skip
    with pytest.raises(PolicyError, match="DateGreaterThan"):
        evaluate(st, Request("s3:GetObject", "arn:aws:s3:::b/k"))


def test_resource_policy_principals() -> None:
    st = policy(
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "kms:*", "Resource": "*"},
        {
            "Effect": "Allow",
            "Principal": {"Service": "logs.amazonaws.com"},
            "Action": "kms:Decrypt",
            "Resource": "*",
        },
    )
    role = Principal(arn="arn:aws:iam::1:role/r")
    assert evaluate(st, Request("kms:Decrypt", "k"), Principal(arn=role.account_root)).allowed
    assert not evaluate(st, Request("kms:Decrypt", "k"), role).allowed  # only via IAM (the root grant)
    assert evaluate(st, Request("kms:Decrypt", "k"), Principal(service="logs.amazonaws.com")).allowed
    assert not evaluate(st, Request("kms:Encrypt", "k"), Principal(service="logs.amazonaws.com")).allowed


# -- the template's roles ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> PolicyModel:
    return PolicyModel.load(ROOT)


def test_every_function_machine_and_job_has_a_role(model: PolicyModel) -> None:
    from lakehouse.local.project import Project

    project = Project.load(ROOT)
    assert set(model.function_roles) == set(project.function_ids())
    assert set(model.machine_roles) == {"IngestStateMachine", "MaintenanceStateMachine"}
    assert model.glue_job_roles == {"BronzeToSilverGlueJob": "GlueJobRole"}
    for role in [*model.function_roles.values(), *model.machine_roles.values(), "EmrJobRole"]:
        assert model.role(role).allow_statements(), role


def test_sam_implicit_function_roles_match_aws_sam_translator(model: PolicyModel) -> None:
    """The SAM-generated parts of each `<Function>Role` (managed policies, policy names, the DLQ statement)
    as aws-sam-translator 1.115.0 produced them for this template (tests/unit/iam_sam_implicit_roles.json)."""
    expected = json.loads((Path(__file__).with_name("iam_sam_implicit_roles.json")).read_text())["roles"]
    assert set(expected) == set(model.function_roles.values())
    for role_name, spec in expected.items():
        role = model.role(role_name)
        sources = {st.policy.split("/", 1)[1] for st in role.statements}
        assert sources == set(spec["managed"]) | set(spec["policies"]), role_name
        [dlq] = [st for st in role.statements if st.policy.endswith("/DeadLetterQueuePolicy")]
        assert dlq.actions == ("sqs:SendMessage",)
        assert dlq.resources == ("arn:aws:sqs:us-east-1:000000000000:FunctionDeadLetterQueue",)


def test_resource_arns_are_built_as_aws_builds_them(model: PolicyModel) -> None:
    r = model.resolver
    assert r.value({"Fn::GetAtt": ["LakeBucket", "Arn"]}) == "arn:aws:s3:::lake"
    assert (
        r.value({"Fn::GetAtt": ["LeaseTable", "Arn"]})
        == "arn:aws:dynamodb:us-east-1:000000000000:table/leases"
    )
    assert r.value({"Ref": "CommitObjectFunction.Alias"}) == (
        "arn:aws:lambda:us-east-1:000000000000:function:CommitObjectFunction:live"
    )
    assert r.value({"Ref": "AlertTopic"}) == "arn:aws:sns:us-east-1:000000000000:AlertTopic"
    assert r.value({"Ref": "IngestStateMachine"}) == (
        "arn:aws:states:us-east-1:000000000000:stateMachine:IngestStateMachine"
    )
    assert r.value({"Fn::GetAtt": ["EmrJobRole", "Arn"]}) == "arn:aws:iam::000000000000:role/EmrJobRole"
    assert r.value({"Fn::Sub": "${LakeBucket.Arn}/tables/*"}) == "arn:aws:s3:::lake/tables/*"
    assert r.value({"Fn::GetAtt": ["IngestStateMachineLogGroup", "Arn"]}).startswith(
        "arn:aws:logs:us-east-1:000000000000:log-group:/aws/vendedlogs/states/lakehouse-local-ingest:"
    )


def test_sam_policy_templates_are_refused_with_a_clear_error() -> None:
    template = {
        "Resources": {
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"Policies": [{"S3CrudPolicy": {"BucketName": "b"}}]},
            }
        }
    }
    with pytest.raises(PolicyError, match="S3CrudPolicy"):
        PolicyModel.from_template(template, {})
