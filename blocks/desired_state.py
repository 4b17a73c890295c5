"""The `ppcmk desired state` block: the desired-state YAML kept on the Prefect server (docs/WATCH.md)."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field

from ppcmk.watch.desired import DesiredState, parse_desired_state


class CmkDesiredState(Block):
    """Which environments belong on which policy and key, rotation cadence, expiry horizon."""

    _block_type_name = "ppcmk desired state"
    _block_type_slug = "ppcmk-desired-state"
    _description = "The desired CMK state ppcmk watch compares the estate with and ppcmk converge reaches."

    text: str = Field(..., description="The desired state as YAML (policies:, microsoft_managed:, rotation:, "
                                       "expiry_horizon_days:, pp_admins:, runbooks:).")

    def desired(self, name: str) -> DesiredState:
        return parse_desired_state(self.text, f"block {name}")
