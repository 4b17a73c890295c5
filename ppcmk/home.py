"""$PPCMK_HOME (default ~/.ppcmk): where a host keeps its audit store (without a shared block), reports and
sandbox profiles."""

from __future__ import annotations

import os
from pathlib import Path


def ppcmk_home() -> Path:
    home = Path(os.environ.get("PPCMK_HOME") or Path.home() / ".ppcmk").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home
