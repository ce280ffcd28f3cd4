"""Resolve the ${...} DefinitionSubstitutions of an ASL file with sample values, for the ASL linters.

statelint and asl-validator require every Task "Resource" to be a URI/ARN, but our definitions say
"${InspectObjectFunctionArn}" and let SAM substitute the alias ARN at deploy time. This writes a copy
with syntactically real sample values of the right kind (Lambda alias ARN, SNS topic ARN, bucket name,
...) so the linters check the definition exactly as Step Functions will receive it.

    python scripts/asl_resolve.py statemachine/ingest.asl.json OUT.json
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ACCOUNT = "123456789012"
REGION = "us-east-1"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")


def sample(name: str) -> str:
    if name.endswith("FunctionArn"):
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:lakehouse-dev-{name[:-3]}:live"
    if name.endswith("TopicArn"):
        return f"arn:aws:sns:{REGION}:{ACCOUNT}:lakehouse-dev-{name[:-3]}"
    if name.endswith("RoleArn"):
        return f"arn:aws:iam::{ACCOUNT}:role/lakehouse-dev-{name[:-3]}"
    if name.endswith("Bucket"):
        return f"lakehouse-dev-{name.lower()}-{ACCOUNT}"
    if name == "EmrApplicationId":
        return "00fabcdefghij123"
    return f"lakehouse-dev-{name}"


def resolve(text: str) -> str:
    return PLACEHOLDER.sub(lambda m: sample(m.group(1)), text)


def main(argv: list[str]) -> int:
    if len(argv) != 3:  # noqa: PLR2004 (the program, the ASL file, the output file)
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = Path(argv[1]), Path(argv[2])
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(resolve(src.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
