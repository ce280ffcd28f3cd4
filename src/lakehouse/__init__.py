"""Serverless Delta lakehouse."""

__version__ = "0.1.0"
