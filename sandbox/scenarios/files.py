"""A scenario as a directory of JSON files, one per service (settings, identities, keyvault, arm, ...)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCENARIOS_DIR = Path(__file__).parent
SECTIONS = ("settings", "identities", "keyvault", "arm", "rbac", "powerplatform")


def scenario_dir(scenario: str | Path) -> Path:
    """A scenario name (directory under sandbox/scenarios) or a path to a scenario directory."""
    candidate = Path(scenario)
    if candidate.is_dir():
        return candidate
    named = SCENARIOS_DIR / str(scenario)
    if named.is_dir():
        return named
    known = ", ".join(
        sorted(p.name for p in SCENARIOS_DIR.iterdir() if p.is_dir() and not p.name.startswith("_"))
    )
    raise ValueError(
        f"scenario {scenario!r}: no such directory; use one of: {known}, or a path to a directory"
    )


def read_scenario_dir(scenario: str | Path) -> dict[str, dict[str, Any]]:
    """All sections of a scenario directory; a missing file is an empty section."""
    directory = scenario_dir(scenario)
    data: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        path = directory / f"{section}.json"
        if not path.exists():
            data[section] = {}
            continue
        try:
            data[section] = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"scenario file {path} is not valid JSON: {exc}") from exc
    if not data["settings"]:
        raise ValueError(
            f"scenario {directory} has no settings.json (tenant_id, subscription_id, start_time)"
        )
    return data
