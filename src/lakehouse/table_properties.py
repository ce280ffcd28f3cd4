"""Delta table properties every table we create gets (delta-rs on Lambda, Spark on Glue and EMR).

No imports beyond the standard library: the EMR Serverless jobs ship this module to EMR's own Python.
"""

from __future__ import annotations

# Athena reads Delta natively but not deletion vectors; keep them off on every table we create.
# A checkpoint every 10 commits; after it, writers delete log entries older than
# delta.logRetentionDuration (30 days by default), so their roles may delete under _delta_log/.
TABLE_CONFIGURATION: dict[str, str | None] = {  # annotations are not evaluated (3.9 is fine)
    "delta.enableDeletionVectors": "false",
    "delta.checkpointInterval": "10",
}
