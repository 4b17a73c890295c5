"""The generated fleet scenario: N managed environments, stable ids, loadable by name."""

from __future__ import annotations

import pytest

from ppcmk_sandbox.scenarios import load_scenario
from ppcmk_sandbox.world import World


def test_fleet_adds_managed_environments_with_stable_ids() -> None:
    first, second = load_scenario("fleet:20"), load_scenario("fleet:20")
    default = len(load_scenario("default")["powerplatform"]["environments"])
    world = World(first)
    fleet = [e for e in world.powerplatform.environments.values() if e.display_name.startswith("Fleet")]
    assert len(fleet) == 20 and len(world.powerplatform.environments) == default + 20
    assert all(e.managed and e.location == "europe" for e in fleet)
    assert {e.sku for e in fleet} == {"Sandbox", "Production"}
    assert first["powerplatform"] == second["powerplatform"]


def test_fleet_size_must_be_a_number() -> None:
    with pytest.raises(ValueError, match="fleet:<number"):
        load_scenario("fleet:many")
