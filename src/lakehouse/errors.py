"""The exception classes the pipeline raises.

Step Functions matches Retry/Catch on the Lambda error type, which is the exception's class name,
so these names are part of the state machines' contract (statemachine/*.asl.json).
"""

from __future__ import annotations


class LakehouseError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class TransientError(LakehouseError):
    """Worth retrying: a conflict, a held lease, a throttled or unavailable service."""


class CommitConflictError(TransientError):
    """A Delta commit lost a race with another writer and its retries ran out."""


class LeaseHeldError(TransientError):
    """Another run holds the table's lease."""


class InvalidInputError(LakehouseError):
    """The landed file cannot be ingested as it is. Never retried; the file is quarantined."""


class UnsupportedFormatError(InvalidInputError):
    """The file's bytes are not a format the contract accepts (or not any format we read)."""


class SchemaMismatchError(InvalidInputError):
    """The file's columns do not fit the table under the dataset's schema-evolution policy."""


class RowRuleViolationError(InvalidInputError):
    """A row broke a rule whose action is `fail`."""


class ObjectChangedError(InvalidInputError):
    """The object version a run was started for can no longer be read: it was overwritten (its ETag
    differs) or it is gone (the key or the version was deleted). Nothing is ingested under this run's
    identity; the newer version has its own event and run."""


class ContractError(LakehouseError):
    """A dataset contract is missing or invalid (names the file, line and field)."""


class ChecksFailedError(LakehouseError):
    """One or more table checks of severity `fail` did not pass."""


class AccessDeniedError(LakehouseError):
    """A call its role's policies do not allow (raised by the local IAM enforcement, docs/IAM.md).

    The message is AWS's ("User: arn:aws:sts::...:assumed-role/<role>/<session> is not authorized to
    perform: <action> on resource: <arn> because no identity-based policy allows the <action> action"),
    and `response` is shaped like botocore's ClientError response (`Error.Code` AccessDenied for S3,
    AccessDeniedException for the other services), so callers that read the code see what AWS returns.
    """

    def __init__(
        self, message: str, code: str = "AccessDenied", action: str = "", resource: str = ""
    ) -> None:
        super().__init__(message)
        self.action = action
        self.resource = resource
        self.response = {"Error": {"Code": code, "Message": message}}


class InputLimitError(InvalidInputError):
    """The file exceeds a limit of its contract: line length, field count, decompressed size or ratio."""


# Errors that are outcomes of the pipeline's own rules (retried, or the file/contract is at fault), not
# bugs. The canary alarms count every other exception (lakehouse.observability).
EXPECTED_ERRORS: tuple[type[LakehouseError], ...] = (
    TransientError,
    InvalidInputError,
    ContractError,
    ChecksFailedError,
)
