"""All state of the sandbox cloud, shared by every service, plus persistence and reconciliation.

Sub-states follow one protocol: ``Cls.load(section: dict, world) -> instance``, ``instance.to_dict() -> dict``
and optionally ``instance.reconcile(world)``, run by ``after_change`` (order: keyvault, rbac, arm,
powerplatform).
The ARM, RBAC and Power Platform states are imported when present, so each service can be built on its own.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppcmk_sandbox.clock import Clock, parse_instant
from ppcmk_sandbox.identity.principals import Identities
from ppcmk_sandbox.keyvault.state import KeyVaultState
from ppcmk_sandbox.scenarios import load_scenario
from ppcmk_sandbox.settings import SandboxSettings

if TYPE_CHECKING:
    from ppcmk_sandbox.arm.state import ArmState
    from ppcmk_sandbox.powerplatform.state import PowerPlatformState
    from ppcmk_sandbox.rbac.state import RbacState

Reconciler = Callable[["World"], None]

# section name -> (module, class) of the optional sub-states, in reconciliation order.
OPTIONAL_STATES: dict[str, tuple[str, str]] = {
    "rbac": ("ppcmk_sandbox.rbac.state", "RbacState"),
    "arm": ("ppcmk_sandbox.arm.state", "ArmState"),
    "powerplatform": ("ppcmk_sandbox.powerplatform.state", "PowerPlatformState"),
}


def _optional_state_class(section: str) -> Any | None:
    module_name, class_name = OPTIONAL_STATES[section]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or (exc.name and module_name.startswith(exc.name + ".")):
            return None  # that service is not built (yet); the world runs without it
        raise
    return getattr(module, class_name)


class World:
    """The whole cloud. Mutate only under ``lock``; call ``after_change()`` after a mutation."""

    def __init__(self, data: dict[str, dict[str, Any]], clock_speed: float = 0.0) -> None:
        self.lock = threading.RLock()
        self.settings = SandboxSettings.model_validate(data["settings"])
        saved_now = data.get("clock", {}).get("now")
        start = parse_instant(saved_now) if saved_now else self.settings.start_time
        self.clock = Clock(start, clock_speed)
        self.clock.listeners.append(self.after_change)
        self.identities = Identities.load(data.get("identities", {}), self.settings.tenant_id)
        self.keyvault = KeyVaultState.load(data.get("keyvault", {}), self)
        self.rbac: RbacState | None = None
        self.arm: ArmState | None = None
        self.powerplatform: PowerPlatformState | None = None
        self.reconcilers: list[Reconciler] = [self.keyvault.reconcile]
        for section in OPTIONAL_STATES:
            state_class = _optional_state_class(section)
            if state_class is None:
                continue
            state = state_class.load(data.get(section, {}), self)
            setattr(self, section, state)
            if hasattr(state, "reconcile"):
                self.reconcilers.append(state.reconcile)

    @classmethod
    def from_scenario(cls, scenario: str | Path, clock_speed: float = 0.0) -> World:
        return cls(load_scenario(scenario), clock_speed)

    @property
    def tenant_id(self) -> str:
        return self.settings.tenant_id

    @property
    def subscription_id(self) -> str:
        return self.settings.subscription_id

    def after_change(self) -> None:
        """Bring derived state up to date with the clock and the last mutation (rotation, locks, ...)."""
        with self.lock:
            for reconcile in self.reconcilers:
                reconcile(self)

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            data: dict[str, Any] = {
                "settings": self.settings.model_dump(mode="json"),
                "clock": {"now": self.clock.now().isoformat()},
                "identities": self.identities.to_dict(),
                "keyvault": self.keyvault.to_dict(),
            }
            for section in OPTIONAL_STATES:
                state = getattr(self, section)
                if state is not None:
                    data[section] = state.to_dict()
            return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], clock_speed: float = 0.0) -> World:
        return cls(data, clock_speed)
