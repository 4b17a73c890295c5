"""What a worker's flow run needs before it starts, checked in one place: the pull step of
deployments/prefect.yaml (`ppcmk.worker_setup.worker_ready`) runs it in every flow-run process before the
flow is loaded, so a half-set-up worker fails the run at once, naming each missing setting and its fix,
instead of crashing on a missing file or losing a parked run's checkpoint days later.

- PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK: result storage every worker shares (a parked run's checkpoint lives
  there; a run parked on one machine is resumed on any other).
- PPCMK_AUDIT_STORAGE: the shared audit store (ppcmk.audit.store).
- PREFECT_FLOWS_HEARTBEAT_FREQUENCY: heartbeats, so a run whose machine is lost is marked Crashed.
"""

from __future__ import annotations

import os

from ppcmk.errors import ConfigError

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


def storage_block_fault(value: str) -> str | None:
    """What keeps `value` (TYPE/NAME) from serving as shared storage: not written that way, not on this
    server, or not a writable filesystem block; None when it can."""
    if value.count("/") != 1 or not all(value.split("/")):
        return f"{value!r} is not written as <block type>/<block name> (e.g. s3-bucket/ppcmk-results)"
    from prefect.blocks.core import Block
    from prefect.filesystems import WritableFileSystem

    from ppcmk.audit.store import settled

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
        block_problem(RESULTS_SETTING, str(settings.results.default_storage_block or ""),
                       "the result storage (parked runs' checkpoints)"),
        block_problem(AUDIT_SETTING, os.environ.get(AUDIT_SETTING, "").strip(), "the audit store"),
    ]
    if settings.flows.heartbeat_frequency is None:
        found.append(ConfigError(HEARTBEAT_SETTING, "heartbeats are off", f"set {HEARTBEAT_SETTING}=30 (the "
                                 "prefect.yaml work pool does), so a lost worker's runs are marked Crashed"))
    return [problem for problem in found if problem is not None]


def worker_ready() -> dict[str, str]:
    """The prefect.yaml pull step: refuse to start on a half-set-up worker (the runbooks are imported from
    the installed package, by their module paths)."""
    missing = problems()
    if missing:
        raise WorkerNotReady(missing)
    return {}
