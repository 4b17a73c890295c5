"""Scenario data: a directory of JSON files (sandbox/scenarios/files.py), or `fleet:<n>`, generated
(sandbox/scenarios/fleet.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ppcmk_sandbox.scenarios.files import SCENARIOS_DIR, SECTIONS, read_scenario_dir, scenario_dir
from ppcmk_sandbox.scenarios.fleet import fleet_scenario

__all__ = ["SCENARIOS_DIR", "SECTIONS", "load_scenario", "scenario_dir"]


def load_scenario(scenario: str | Path) -> dict[str, dict[str, Any]]:
    """All sections of a scenario; a missing file is an empty section. `fleet:<n>` is generated."""
    if isinstance(scenario, str) and scenario.startswith("fleet:"):
        size = scenario.split(":", 1)[1]
        if not size.isdigit():
            raise ValueError(f"scenario {scenario!r}: write fleet:<number of environments>, e.g. fleet:500")
        return fleet_scenario(int(size))
    return read_scenario_dir(scenario)
