"""ARM resource ids as the sandbox's services write them."""

from __future__ import annotations


def resource_id(subscription: str, resource_group: str, resource_type: str, name: str) -> str:
    """`/subscriptions/<s>/resourceGroups/<g>/providers/<namespace/type>/<name>`."""
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{resource_type}/{name}"
