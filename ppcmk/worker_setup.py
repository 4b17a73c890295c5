"""What a worker's flow run needs before it starts, checked in one place: the pull step of
deployments/prefect.yaml (`ppcmk.worker_setup.worker_ready`) runs it in every flow-run process before the
flow is loaded, so a half-set-up worker fails the run at once, naming each missing setting and its fix,
instead of crashing on a missing file or losing a parked run's checkpoint days later.

- PPCMK_CODE_DIR: the folder holding flows/ (a checkout, or the installed package's source).
- PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK: result storage every worker shares (a parked run's checkpoint lives
  there; a run parked on one machine is resumed on any other).
- PPCMK_AUDIT_STORAGE: the shared audit store (ppcmk.audit_store).
- PREFECT_FLOWS_HEARTBEAT_FREQUENCY: heartbeats, so a run whose machine is lost is marked Crashed.
"""

from __future__ import annotations

import os
from pathlib import Path

from ppcmk.errors import ConfigError

CODE_DIR_SETTING = "PPCMK_CODE_DIR"
RESULTS_SETTING = "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"
AUDIT_SETTING = "PPCMK_AUDIT_STORAGE"
HEARTBEAT_SETTING = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"
SETUP_HINT = "`ppcmk setup workers --shared-dir DIR` creates both blocks and prints the lines to set"


class WorkerNotReady(ConfigError):
    """Several settings missing at once: every one is named, each with its fix."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        listed = "; ".join(str(problem) for problem in problems)
        super().__init__("worker set-up", f"{len(problems)} setting(s) missing or wrong: {listed}",
                         "set them in the worker's environment and start the worker again")


def _code_dir_problem() -> ConfigError | None:
    value = os.environ.get(CODE_DIR_SETTING, "").strip()
    fix = (f"start the worker with {CODE_DIR_SETTING}=<the ppcmk folder that holds flows/>, e.g. "
           f"{CODE_DIR_SETTING}=/opt/ppcmk prefect worker start --pool ppcmk-process")
    if not value:
        return ConfigError(CODE_DIR_SETTING, "not set on this worker", fix)
    if not (Path(value) / "flows" / "onboard.py").is_file():
        return ConfigError(CODE_DIR_SETTING, f"{value} holds no flows/onboard.py", fix)
    return None


def storage_block_fault(value: str) -> str | None:
    """What keeps `value` (TYPE/NAME) from serving as shared storage: not written that way, not on this
    server, or not a writable filesystem block; None when it can."""
    if value.count("/") != 1 or not all(value.split("/")):
        return f"{value!r} is not written as <block type>/<block name> (e.g. s3-bucket/ppcmk-results)"
    from prefect.blocks.core import Block
    from prefect.filesystems import WritableFileSystem

    from ppcmk.audit_store import settled

    try:
        block = settled(Block.load(value))
    except Exception as failure:
        return f"block {value!r} cannot be loaded ({failure})"
    if not isinstance(block, WritableFileSystem):
        return f"block {value!r} is a {type(block).__name__}, not a writable filesystem block"
    return None


def block_problem(setting: str, value: str, what: str) -> ConfigError | None:
    fix = f"set {setting}=<block type>/<block name> of {what} every worker reaches ({SETUP_HINT})"
    if not value:
        return ConfigError(setting, "not set on this worker", fix)
    fault = storage_block_fault(value)
    return None if fault is None else ConfigError(setting, fault, fix)


def problems() -> list[ConfigError]:
    """Every missing or wrong setting of this worker process (empty when it is ready)."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    found = [
        _code_dir_problem(),
        block_problem(RESULTS_SETTING, str(settings.results.default_storage_block or ""),
                       "the result storage (parked runs' checkpoints)"),
        block_problem(AUDIT_SETTING, os.environ.get(AUDIT_SETTING, "").strip(), "the audit store"),
    ]
    if settings.flows.heartbeat_frequency is None:
        found.append(ConfigError(HEARTBEAT_SETTING, "heartbeats are off", f"set {HEARTBEAT_SETTING}=30 (the "
                                 "prefect.yaml work pool does), so a lost worker's runs are marked Crashed"))
    return [problem for problem in found if problem is not None]


def worker_ready() -> dict[str, str]:
    """The prefect.yaml pull step: refuse to start on a half-set-up worker, then work in the code folder."""
    missing = problems()
    if missing:
        raise WorkerNotReady(missing)
    directory = os.environ[CODE_DIR_SETTING].strip()
    os.chdir(directory)
    return {"directory": directory}
