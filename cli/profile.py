"""The local sandbox profiles, written by `ppcmk sandbox up` and `ppcmk serve`: each running instance keeps
`$PPCMK_HOME/instances/<pid>.json`, and `$PPCMK_HOME/sandbox.json` is the one started last that still runs.

CLI commands that are not given block names use it to reach the running sandbox, so a newcomer never has to
configure anything to try ppcmk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from ppcmk.home import ppcmk_home
from ppcmk_cli.exit_codes import CliError, ExitCode

PROFILE_FILE = "sandbox.json"
INSTANCES_DIR = "instances"



class SandboxProfile(BaseModel):
    """Where a running sandbox listens and which CA signs its certificates."""

    model_config = ConfigDict(extra="ignore")

    url: str
    ca: str
    credentials: str | None = None  # the sandbox principals' secrets, certificates and passwords (mode 0600)
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
            data = {name: getattr(endpoints, name)
                    for name in ("url", "ca", "credentials", "tenant_id", "subscription_id")}
            data["vaults"] = dict(getattr(endpoints, "vaults", {}) or {})
        data["ca"] = str(data["ca"])
        return cls.model_validate({**data, **extra})


def profile_path() -> Path:
    """The profile of the sandbox started last (and still running): what commands use by default."""
    return ppcmk_home() / PROFILE_FILE


def instance_path(pid: int | None) -> Path:
    """Each running sandbox / serve keeps its own profile here; stopping one never touches another's."""
    return ppcmk_home() / INSTANCES_DIR / f"{pid if pid is not None else 'unknown'}.json"


def _write(path: Path, profile: SandboxProfile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(profile.model_dump_json(indent=2))
    temporary.replace(path)


def _read(path: Path) -> SandboxProfile | None:
    try:
        return SandboxProfile.model_validate_json(path.read_text())
    except (OSError, ValidationError):
        return None


def _alive(profile: SandboxProfile) -> bool:
    """Profiles written without a real process id (tests, the demo) count as alive."""
    if profile.pid is None or profile.pid <= 0:
        return True
    try:
        os.kill(profile.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def running_profiles() -> list[SandboxProfile]:
    """The profiles of the instances still running, newest first (stale ones of killed processes removed)."""
    found: list[tuple[float, SandboxProfile]] = []
    for path in (ppcmk_home() / INSTANCES_DIR).glob("*.json"):
        profile = _read(path)
        if profile is None:
            continue
        if not _alive(profile):
            path.unlink(missing_ok=True)
            continue
        found.append((path.stat().st_mtime, profile))
    return [profile for _, profile in sorted(found, key=lambda pair: pair[0], reverse=True)]


def save_profile(profile: SandboxProfile) -> Path:
    """Publish the instance's own profile and make it the default one."""
    _write(instance_path(profile.pid), profile)
    path = profile_path()
    _write(path, profile)
    return path


def remove_profile(written_by_pid: int) -> None:
    """Remove this process's profile; the default one falls back to the newest instance still running."""
    instance_path(written_by_pid).unlink(missing_ok=True)
    path = profile_path()
    current = _read(path)
    if current is not None and current.pid != written_by_pid:
        return
    remaining = running_profiles()
    if remaining:
        _write(path, remaining[0])
    else:
        path.unlink(missing_ok=True)


def find_profile() -> SandboxProfile | None:
    """The profile if one is readable and its process runs, else None (for commands that can work without
    a sandbox)."""
    current = _read(profile_path())
    if current is not None and _alive(current):
        return current
    remaining = running_profiles()
    return remaining[0] if remaining else None


def served_prefect_api() -> str | None:
    """The Prefect API of the newest running `ppcmk serve`, if any."""
    return next((p.prefect_api_url for p in running_profiles() if p.prefect_api_url), None)


def load_profile() -> SandboxProfile:
    found = find_profile()
    if found is not None:
        return found
    path = profile_path()
    if path.exists() and _read(path) is None:
        raise CliError(f"the sandbox profile {path} is unreadable; delete it and start the sandbox again",
                       ExitCode.USAGE)
    raise CliError(
        f"no sandbox is running (no live profile under {ppcmk_home()}); start one with `ppcmk sandbox up` or "
        "`ppcmk serve`, or pass --connection/--target block names",
        ExitCode.UNAVAILABLE,
    )


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
