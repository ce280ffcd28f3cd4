"""The local `StartExecution` lives with the adapters (`lakehouse.adapters.starter`): stages choose it
without importing `lakehouse.local`. Re-exported here for the executor and the CLI."""

from lakehouse.adapters.starter import LocalQueue, LocalStarter, QueuedRun

__all__ = ["LocalQueue", "LocalStarter", "QueuedRun"]
