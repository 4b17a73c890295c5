"""`ppcmk approve` as a person runs it: a separate process that prints a device code; the person opens the
sandbox's verification page, enters the code and signs in with their own UPN and password (over HTTPS, or in
a real browser), and the command answers the run with that proof."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect.settings import PREFECT_API_URL

from ppcmk_cli.profile import SandboxProfile, save_profile
from ppcmk_cli.scripted_sign_in import verification_page_prompt
from tests.support.identity import held

ROOT = Path(__file__).resolve().parents[2]
DEVICE_CODE = re.compile(r"open (\S+) and enter the code (\S+)")
SignsIn = Callable[[str, str], None]  # the person at the verification page: (address, code)


@dataclass(frozen=True)
class Answered:
    exit_code: int
    output: str  # stdout and stderr, as one line


def over_https(cloud: Any, persona: str) -> SignsIn:
    """The person signs in with their UPN and password (from the sandbox's credentials file)."""
    person = held(cloud, persona)
    prompt = verification_page_prompt(cloud.endpoints.ca, person["upn"], person["password"])
    return lambda address, code: prompt(address, code, datetime.now(UTC))


def publish_profile(cloud: Any, home: Path) -> None:
    """The sandbox's profile in `home`, as `ppcmk serve` publishes it (this process stands for its server)."""
    previous = os.environ.get("PPCMK_HOME")
    os.environ["PPCMK_HOME"] = str(home)
    try:
        save_profile(SandboxProfile.from_endpoints(cloud.endpoints, pid=os.getpid()))
    finally:
        if previous is None:
            del os.environ["PPCMK_HOME"]
        else:
            os.environ["PPCMK_HOME"] = previous


def ppcmk_approve(cloud: Any, home: Path, signs_in: SignsIn | None, *arguments: str) -> Answered:
    """Run `ppcmk approve ARGUMENTS` against this Prefect API and sandbox; `signs_in` answers its device
    code (None: nobody signs in, the command must end before asking)."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PPCMK_HOME": str(home), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "COLUMNS": "200"}
    publish_profile(cloud, home)
    command = [sys.executable, "-m", "ppcmk_cli", "approve", *arguments, "--wait", "60"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stderr is not None
    lines: list[str] = []
    for line in process.stderr:
        lines.append(line)
        asked = DEVICE_CODE.search(line)
        if asked:
            assert signs_in is not None, f"asked for a sign-in: {line}"
            signs_in(asked[1], asked[2])
            break
    out, err = process.communicate(timeout=120)
    return Answered(process.returncode, " ".join((out + "".join(lines) + err).split()))


def approve_as(cloud: Any, persona: str, home: Path, *arguments: str) -> Answered:
    """`ppcmk approve ARGUMENTS` answered by `persona`, who signs in at the device code it shows."""
    return ppcmk_approve(cloud, home, over_https(cloud, persona), *arguments)
