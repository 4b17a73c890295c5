"""Human durations on the command line: `90s`, `15m`, `2h`, `7d`, `1w`, or combined like `1d12h`."""

from __future__ import annotations

import re
from datetime import timedelta

from ppcmk_cli.exit_codes import CliError, ExitCode

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str, *, field: str = "DURATION") -> timedelta:
    cleaned = text.strip().lower().replace(" ", "")
    parts = _PART.findall(cleaned)
    if not cleaned or "".join(number + unit for number, unit in parts) != cleaned:
        raise CliError(
            f"{field}: '{text}' is not a duration; write a number with a unit s, m, h, d or w, "
            "e.g. 90s, 2h, 7d, 1d12h",
            ExitCode.USAGE,
        )
    return timedelta(seconds=sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts))
