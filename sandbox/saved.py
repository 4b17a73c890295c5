"""How the sandbox's records are kept in saved state (the state file, the admin snapshot).

One rule for every record, so a field added to a record is saved without anyone remembering to: each
field under its name (camelCase in the sections shaped like ARM's JSON), instants in ISO-8601, nested
records as plain dicts. Loading stays with each record: scenario files name things that saved state
carries by id.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def saved_fields(
    record: DataclassInstance,
    *,
    camel: bool = False,
    leave_out: Collection[str] = (),
    keys: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The record's fields in declaration order, without `leave_out`; `keys` renames fields whose saved
    key is not their name (e.g. the id ARM gives it)."""
    renamed = keys or {}
    return {
        renamed.get(name) or (_camel_case(name) if camel else name):
            value.isoformat() if isinstance(value, datetime) else value
        for name, value in asdict(record).items()
        if name not in leave_out
    }


def _camel_case(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)
