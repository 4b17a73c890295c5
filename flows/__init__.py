"""Prefect flows: one module per documented CMK procedure."""
