"""The names that become parts of paths and object keys: run ids, dataset and model names.

A run id is the Step Functions execution name (`events.execution_name`: `<dataset>-<40 hex>`), and it
ends up in keys (`runs/<run_id>/commit.json`, `objects/<dataset>/<run_id>/...`) and local paths (the
run's work folder). A crafted event could otherwise carry `../` into them. Step Functions allows 1-80
characters; the pipeline only ever makes names of `[A-Za-z0-9_-]`, so that is all it accepts.
Dataset and derived model names are contract identifiers (`^[a-z_][a-z0-9_]*$`).
"""

from __future__ import annotations

import re

from lakehouse.errors import InvalidInputError

RUN_ID_MAX = 80
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,127}")


def run_id(value: object) -> str:
    """`value` if it is a valid run id (execution name), else InvalidInputError."""
    text = value if isinstance(value, str) else ""
    if not _RUN_ID.fullmatch(text):
        raise InvalidInputError(
            f"invalid run id {value!r}: must be 1-{RUN_ID_MAX} characters of A-Z, a-z, 0-9, '_' and '-' "
            "(a Step Functions execution name as the pipeline makes them)"
        )
    return text


def name(value: object, what: str = "dataset") -> str:
    """`value` if it is a valid dataset or model name (a contract identifier), else InvalidInputError."""
    text = value if isinstance(value, str) else ""
    if not _NAME.fullmatch(text):
        raise InvalidInputError(
            f"invalid {what} name {value!r}: must match ^[a-z_][a-z0-9_]*$ (at most 128 characters)"
        )
    return text
