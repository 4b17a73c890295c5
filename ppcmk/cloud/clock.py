"""Time: every wait and every "now" in ppcmk goes through a Sleeper.

Real mode sleeps and reads the wall clock. Virtual mode (sandbox only) advances the sandbox's clock
instead of sleeping and reads the time from it, so a four-day encryption or a 28-day hold passes in
milliseconds, and holds and expiry checks use the same time as the cloud.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import httpx

from ppcmk import USER_AGENT


@runtime_checkable
class Sleeper(Protocol):
    def sleep(self, seconds: float) -> None: ...

    def now(self) -> datetime: ...


class RealSleeper:
    """Sleeps for real and reads the wall clock (UTC)."""

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def now(self) -> datetime:
        return datetime.now(UTC)


class SandboxSleeper:
    """Advances the sandbox's virtual clock instead of sleeping; reads "now" from that clock.

    `waits` records every requested wait so tests can assert on back-off and Retry-After handling.
    """

    def __init__(self, sandbox_url: str, ca_bundle: str, timeout: float = 30.0) -> None:
        self._http = httpx.Client(base_url=sandbox_url.rstrip("/"), verify=ca_bundle, timeout=timeout,
                                  headers={"User-Agent": USER_AGENT})
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        if seconds > 0:
            self._post_clock("/_sandbox/clock/advance", {"seconds": seconds})

    def now(self) -> datetime:
        response = self._http.get("/_sandbox/clock")
        response.raise_for_status()
        return _parse_now(response.json())

    def _post_clock(self, path: str, body: dict[str, float]) -> datetime:
        response = self._http.post(path, json=body)
        response.raise_for_status()
        return _parse_now(response.json())

    def close(self) -> None:
        self._http.close()


# The clock of the cloud the current run acts on, when it is not the wall clock (the sandbox's virtual
# one): an audit entry is stamped with it too, so a period on the cloud's clock selects the entry.
_cloud_clock: ContextVar[Sleeper | None] = ContextVar("ppcmk_cloud_clock", default=None)


def use_cloud_clock(sleeper: Sleeper) -> None:
    """Make `sleeper`'s clock the cloud clock of this context (a virtual one only: the wall clock is the
    cloud's own time everywhere else)."""
    if isinstance(sleeper, SandboxSleeper):
        _cloud_clock.set(sleeper)


def cloud_now() -> datetime | None:
    """The cloud clock of this context, when it is a virtual one; None when it is the wall clock or gone."""
    sleeper = _cloud_clock.get()
    if sleeper is None:
        return None
    try:
        return sleeper.now()
    except httpx.HTTPError:  # the sandbox stopped: the entry keeps its wall-clock time only
        return None


def _parse_now(body: dict[str, str]) -> datetime:
    moment = datetime.fromisoformat(body["now"].replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
