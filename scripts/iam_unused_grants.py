"""Per role of template.yaml, the grants no local run exercised: the least-privilege candidates.

A grant is one Action entry of one Allow statement. Record what the tests allow, then report:

    rm -f .lakehouse/iam-record.jsonl
    LAKEHOUSE_IAM_RECORD=$PWD/.lakehouse/iam-record.jsonl pytest tests/e2e tests/functional/test_*_state_machine.py
    python scripts/iam_unused_grants.py .lakehouse/iam-record.jsonl        # or: make iam-report

Grants only AWS itself uses (logs, X-Ray, the SQS event source, job code in the artifacts bucket...) can
never be exercised locally; they are listed apart, with the reason. docs/IAM.md justifies what stays.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from lakehouse.local.iam import PolicyModel, Statement, glob_match, iter_grants

# (action pattern, resource pattern or "*", why no local run can exercise it)
AWS_SIDE: list[tuple[str, str, str]] = [
    ("logs:*", "*", "Lambda, Glue and Step Functions write their own logs in AWS"),
    ("xray:*", "*", "X-Ray tracing of functions and state machines (disabled locally)"),
    ("sqs:*", "*", "the SQS event source and the dead-letter queue are AWS-side plumbing"),
    ("cloudwatch:PutMetricData", "*", "Glue job metrics"),
    ("s3:GetObject", "arn:aws:s3:::artifacts/*", "Glue/EMR fetch job code, the wheel and contracts"),
    ("s3:PutObject", "arn:aws:s3:::artifacts/logs/*", "EMR Serverless writes its job logs"),
    ("s3:GetBucketLocation", "*", "Hadoop's S3 clients and Athena look up bucket regions"),
    ("s3:ListBucket", "arn:aws:s3:::artifacts", "Glue/EMR list the job code"),
    ("s3:AbortMultipartUpload", "*", "Athena's multipart result uploads"),
    ("s3:ListMultipartUploadParts", "*", "Athena's multipart result uploads"),
    ("s3:ListBucketMultipartUploads", "*", "Athena's multipart result uploads"),
    ("athena:StopQueryExecution", "*", "Step Functions stops a query when the task times out"),
    ("glue:GetPartitions", "*", "Athena/Spark planning on partitioned catalog tables"),
    ("emr-serverless:CancelJobRun", "*", "covered by the .sync check; cancels only on timeout"),
    ("glue:BatchStopJobRun", "*", "Step Functions stops the job run when the task times out"),
]


def aws_side(st: Statement, action: str) -> str | None:
    for pattern, resource, why in AWS_SIDE:
        if glob_match(pattern, action, ignore_case=True) and (
            resource == "*" or any(glob_match(resource, r) or r == resource for r in st.resources)
        ):
            return why
    return None


def load_records(paths: list[Path]) -> set[tuple[str, str, str]]:
    seen: set[tuple[str, str, str]] = set()
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                seen.add((row["role"], row["statement"], row["action"].lower()))
    return seen


def report(model: PolicyModel, seen: set[tuple[str, str, str]]) -> dict[str, dict[str, list[dict[str, str]]]]:
    out: dict[str, dict[str, list[dict[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for name in sorted(model.roles):
        for st, action in iter_grants(model.role(name)):
            entry = {"statement": st.label.split("/", 1)[1], "action": action, "resources": ", ".join(st.resources)}
            if (name, st.label, action.lower()) in seen:
                out[name]["exercised"].append(entry)
            elif why := aws_side(st, action):
                out[name]["aws_side"].append({**entry, "why": why})
            else:
                out[name]["unused"].append(entry)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="+", type=Path, help="files written via LAKEHOUSE_IAM_RECORD")
    parser.add_argument("--json", action="store_true", help="the whole report as JSON")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.records if not p.is_file()]
    if missing:
        print(f"no such record file: {', '.join(missing)} (run the tests with LAKEHOUSE_IAM_RECORD set)")
        return 2
    result = report(PolicyModel.load(), load_records(args.records))
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    totals = {k: sum(len(r[k]) for r in result.values()) for k in ("exercised", "aws_side", "unused")}
    print(
        f"{totals['exercised']} grants exercised, {totals['aws_side']} used only by AWS itself, "
        f"{totals['unused']} never exercised (least-privilege candidates):"
    )
    for role, parts in result.items():
        for entry in parts.get("unused", []):
            print(f"  {role:32} {entry['statement']:48} {entry['action']:26} {entry['resources']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
