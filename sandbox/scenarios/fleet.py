"""A generated scenario for scale tests and benchmarks: the default tenant plus N managed environments."""

from __future__ import annotations

import uuid
from typing import Any

from ppcmk_sandbox.scenarios.files import read_scenario_dir

_FLEET_NAMESPACE = uuid.UUID("5d1f7a40-2b8e-4c1a-9f3e-6a7b8c9d0e1f")
# Canary first: every `sandbox_every`-th environment is Sandbox type, the rest Production (waves need both).
_DEFAULT_SANDBOX_EVERY = 5


def fleet_scenario(
    n: int, geo: str = "europe", azure_region: str = "westeurope", sandbox_every: int = _DEFAULT_SANDBOX_EVERY
) -> dict[str, dict[str, Any]]:
    """Scenario data (all sections) with `n` extra Managed Environments in `geo`, ids stable run to run."""
    if n < 0:
        raise ValueError(f"fleet size must be >= 0 (got {n}); use Sandbox(scenario='fleet:<n>')")
    data = read_scenario_dir("default")
    environments = data["powerplatform"].setdefault("environments", [])
    for index in range(n):
        sku = "Sandbox" if sandbox_every and index % sandbox_every == 0 else "Production"
        environments.append(
            {
                "id": str(uuid.uuid5(_FLEET_NAMESPACE, f"{geo}/{index}")),
                "display_name": f"Fleet {geo} {index:04d}",
                "location": geo,
                "azure_region": azure_region,
                "sku": sku,
                "protection_level": "Standard",
            }
        )
    return data
