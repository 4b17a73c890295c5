"""The fault tests' counts for the session summary: each test process appends what it measured (the test
outcomes of the catalogues, the fault matrix's cell verdicts, the secrets found at rest) to one folder the
whole session shares, and the summary (tests/faults/conftest.py) adds them up. The folder's path is set by
the first process in PPCMK_FAULT_COUNTS, so parallel workers write to the same place."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

FOLDER_VARIABLE = "PPCMK_FAULT_COUNTS"


def folder() -> Path:
    if FOLDER_VARIABLE not in os.environ:
        os.environ[FOLDER_VARIABLE] = tempfile.mkdtemp(prefix="ppcmk-fault-counts-")
    return Path(os.environ[FOLDER_VARIABLE])


def append(kind: str, **values: Any) -> None:
    (folder() / f"{kind}-{uuid.uuid4().hex}.json").write_text(json.dumps(values))


def read(kind: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder().glob(f"{kind}-*.json"))]


class MatrixTally:
    """The fault matrix's cells: (runbook, fault, write) → the problems found (none: survived)."""

    def record(self, runbook: str, fault: str, cells: dict[str, list[str]]) -> None:
        for write, problems in cells.items():
            append("cell", runbook=runbook, fault=fault, write=write, survived=not problems)


MATRIX = MatrixTally()


def record_secrets(found: int) -> None:
    append("secrets", found=found)


def summary() -> str | None:
    """One line of counts, or None when no fault test ran."""
    outcomes = read("outcome")
    cells = read("cell")
    secrets = read("secrets")
    if not (outcomes or cells or secrets):
        return None

    def tests(module: str) -> str:
        mine = [o for o in outcomes if o["module"] == module and o["catalogue"]]
        return f"{sum(o['passed'] for o in mine)}/{len(mine)}"

    def survived(chosen: list[dict[str, Any]]) -> str:
        return f"{sum(c['survived'] for c in chosen)}/{len(chosen)}"

    crashes = [c for c in cells if c["fault"] == "crash"]
    return (f"bad inputs rejected cleanly {tests('test_bad_input')}; fault x write-step cells survived "
            f"{survived(cells)} (crash points converged {survived(crashes)}, over "
            f"{len({c['runbook'] for c in cells})} runbooks); TLS cases {tests('test_tls')}; tokens/secrets "
            f"found at rest {sum(s['found'] for s in secrets)} (in {len(secrets)} scans)")
