"""The local sandbox profile: `$PPCMK_HOME/sandbox.json`, written by `ppcmk sandbox up` and `ppcmk serve`.

CLI commands that are not given block names use it to reach the running sandbox, so a newcomer never has to
configure anything to try ppcmk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from ppcmk.cli.exit_codes import CliError, ExitCode

PROFILE_FILE = "sandbox.json"


def ppcmk_home() -> Path:
    home = Path(os.environ.get("PPCMK_HOME") or Path.home() / ".ppcmk").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


class SandboxProfile(BaseModel):
    """Where a running sandbox listens and which CA signs its certificates."""

    model_config = ConfigDict(extra="ignore")

    url: str
    ca: str
    tenant_id: str
    subscription_id: str
    vaults: dict[str, str] = {}
    scenario: str = "default"
    state_file: str | None = None
    pid: int | None = None
    # set by `ppcmk serve`: the Prefect API its UI and deployments use
    prefect_api_url: str | None = None

    @classmethod
    def from_endpoints(cls, endpoints: Any, **extra: Any) -> SandboxProfile:
        """Build from `Sandbox.endpoints` (pydantic model, dataclass or mapping)."""
        if hasattr(endpoints, "model_dump"):
            data = endpoints.model_dump(mode="json")
        elif isinstance(endpoints, dict):
            data = dict(endpoints)
        else:
            data = {name: getattr(endpoints, name) for name in ("url", "ca", "tenant_id", "subscription_id")}
            data["vaults"] = dict(getattr(endpoints, "vaults", {}) or {})
        data["ca"] = str(data["ca"])
        return cls.model_validate({**data, **extra})


def profile_path() -> Path:
    return ppcmk_home() / PROFILE_FILE


def save_profile(profile: SandboxProfile) -> Path:
    path = profile_path()
    temporary = path.with_suffix(".tmp")
    temporary.write_text(profile.model_dump_json(indent=2))
    temporary.replace(path)
    return path


def remove_profile(written_by_pid: int) -> None:
    """Remove the profile if this process wrote it (a newer sandbox may have replaced it)."""
    path = profile_path()
    try:
        current = SandboxProfile.model_validate_json(path.read_text())
    except (OSError, ValidationError):
        return
    if current.pid == written_by_pid:
        path.unlink(missing_ok=True)


def find_profile() -> SandboxProfile | None:
    """The profile if one is readable, else None (for commands that can work without a sandbox)."""
    try:
        return SandboxProfile.model_validate_json(profile_path().read_text())
    except (OSError, ValidationError):
        return None


def load_profile() -> SandboxProfile:
    path = profile_path()
    if not path.exists():
        raise CliError(
            f"no sandbox is running (no profile at {path}); start one with `ppcmk sandbox up` or "
            "`ppcmk serve`, or pass --connection/--target block names",
            ExitCode.UNAVAILABLE,
        )
    try:
        return SandboxProfile.model_validate(json.loads(path.read_text()))
    except (ValueError, ValidationError) as error:
        raise CliError(
            f"the sandbox profile {path} is unreadable ({error.__class__.__name__}); delete it and run "
            "`ppcmk sandbox up` again",
            ExitCode.USAGE,
        ) from error


class SandboxAdmin:
    """Talks to the `/_sandbox/...` admin routes of a running sandbox over verified HTTPS."""

    def __init__(self, profile: SandboxProfile, timeout: float = 10.0) -> None:
        self._profile = profile
        self._client = httpx.Client(base_url=profile.url, verify=profile.ca, timeout=timeout)

    def __enter__(self) -> SandboxAdmin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._client.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.TransportError as error:
            raise CliError(
                f"the sandbox at {self._profile.url} does not answer ({error.__class__.__name__}); "
                "is `ppcmk sandbox up` (or `ppcmk serve`) still running?",
                ExitCode.UNAVAILABLE,
            ) from error
        if response.status_code >= 400:
            raise CliError(
                f"the sandbox refused {method} {path}: "
                f"HTTP {response.status_code} {response.text.strip()[:300]}",
                ExitCode.USAGE if response.status_code < 500 else ExitCode.FAILED,
            )
        return response.json() if response.content else None

    def clock(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_sandbox/clock"))

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        return dict(self._call("POST", "/_sandbox/clock/advance", {"seconds": seconds}))

    def add_fault(self, rule: dict[str, Any]) -> Any:
        return self._call("POST", "/_sandbox/faults", rule)

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sandbox/faults")
