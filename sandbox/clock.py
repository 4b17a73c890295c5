"""The sandbox's virtual clock (UTC): manual by default (tests advance it) or real time x speed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any


def parse_instant(value: str) -> datetime:
    """An ISO-8601 instant; a naive value is taken as UTC."""
    instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def instant_or_none(value: Any) -> datetime | None:
    """An optional instant of saved state or a scenario: None when absent or empty."""
    return None if value in (None, "") else parse_instant(str(value))


class Clock:
    """Virtual time. ``speed == 0`` stands still until ``advance``; ``speed > 0`` runs at real time x speed.

    Listeners run after every ``advance`` (the world reconciles: rotation policies, locks, deletions).
    """

    def __init__(self, start: datetime, speed: float = 0.0) -> None:
        if speed < 0:
            raise ValueError("clock_speed must be >= 0 (0 = manual clock advanced by tests)")
        self._base = start.astimezone(UTC)
        self._speed = speed
        self._anchor = time.monotonic()
        self._guard = threading.Lock()
        self.listeners: list[Callable[[], None]] = []

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        with self._guard:
            if self._speed == 0:
                return self._base
            return self._base + timedelta(seconds=(time.monotonic() - self._anchor) * self._speed)

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("the clock only moves forward: advance by a non-negative duration")
        with self._guard:
            self._base += delta
        for listener in list(self.listeners):
            listener()
        return self.now()

    def set_speed(self, speed: float) -> None:
        """Change speed without jumping: the current virtual instant becomes the new base."""
        if speed < 0:
            raise ValueError("clock_speed must be >= 0")
        current = self.now()
        with self._guard:
            self._base, self._speed, self._anchor = current, speed, time.monotonic()
