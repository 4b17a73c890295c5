"""The virtual clock and the ISO-8601 durations Key Vault uses."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from ppcmk_sandbox.clock import Clock
from ppcmk_sandbox.keyvault.state import parse_duration

START = datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_manual_clock_stands_still_until_advanced_and_notifies() -> None:
    clock = Clock(START)
    seen: list[datetime] = []
    clock.listeners.append(lambda: seen.append(clock.now()))
    assert clock.now() == START
    clock.advance(timedelta(hours=2))
    assert clock.now() == seen[0] == START + timedelta(hours=2)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(timedelta(seconds=-1))


def test_speed_clock_follows_real_time_times_speed() -> None:
    clock = Clock(START, speed=10_000)
    time.sleep(0.005)
    assert clock.now() - START >= timedelta(seconds=50)
    clock.set_speed(0)
    frozen = clock.now()
    assert clock.now() == frozen
    with pytest.raises(ValueError, match="clock_speed"):
        Clock(START, speed=-1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P90D", timedelta(days=90)),
        ("P1Y", timedelta(days=365)),
        ("P2M", timedelta(days=60)),
        ("PT12H", timedelta(hours=12)),
        ("P1W", timedelta(days=7)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["90D", "P", "PT", "P1.5D", ""])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_duration(text)
