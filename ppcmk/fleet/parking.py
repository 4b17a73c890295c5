"""A fleet step that stops waiting: the operation it leaves running, and the pause key of a parked run.

A deployment run parked during a long link/unlink wait suspends under a key with `PARK_KEY_PREFIX`
(flows/_parking.py); the waker (deployments/wake.py) resumes exactly these, and the approval commands leave
them alone (a parked run waits for no answer).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ppcmk.models.environments import OperationKind

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

PARK_KEY_PREFIX = "ppcmk-park-"
DEFAULT_PARK_AFTER_MINUTES = 30.0


class ParkedOperation(BaseModel):
    """A lifecycle operation still running at the service when its step stopped waiting for it."""

    kind: OperationKind
    token: str = Field(description="the operation's continuation token: a wake resumes it without a start")
    attempts: int = Field(ge=1, description="operations started for this environment so far (this one too)")
    deadline: datetime = Field(description="when it counts as failed (cloud clock), however often it parks")


def is_parked(run: FlowRun) -> bool:
    """Suspended while the service links or unlinks its environments: it waits for the waker, not a person."""
    return run.state is not None and (run.state.state_details.pause_key or "").startswith(PARK_KEY_PREFIX)
