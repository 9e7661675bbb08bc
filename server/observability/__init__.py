"""Logs, redaction at the logging boundary, and metrics."""
