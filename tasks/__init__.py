"""Reusable Prefect tasks, one module per service."""
