"""`ppcmk setup blocks` and `ppcmk setup workers`: everything a Prefect server with process workers on several
machines needs from ppcmk, created in one go or not at all.

- `setup blocks` saves the connection and target blocks under the names deployments/prefect.yaml uses, from a
  JSON/YAML file (`{"connections": {name: {...}}, "targets": {name: {...}}}`) or from the running sandbox.
  Every block is validated before the first one is saved.
- `setup workers` saves the shared result storage and audit store blocks (LocalFileSystem on a folder all
  workers mount, or existing remote blocks), creates the zombie-run automation and the audit lock, and prints
  the environment every worker starts with.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

import ppcmk_deployments
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.prefect_api import prefect_api

console = Console()
PREFECT_FILE = Path(ppcmk_deployments.__file__).resolve().parent / "prefect.yaml"
CONNECTION_PARAMETERS = ("connection", "kv_connection", "pp_connection")
RESULTS_BLOCK = "ppcmk-results"
AUDIT_BLOCK = "ppcmk-audit"


def block_names(prefect_file: Path) -> tuple[list[str], list[str]]:
    """The connection and target block names the deployments of `prefect_file` pass as parameters."""
    document = _read_document(prefect_file, "--prefect-file")
    connections: set[str] = set()
    targets: set[str] = set()
    for deployment in document.get("deployments", []):
        for name, value in (deployment.get("parameters") or {}).items():
            if name in CONNECTION_PARAMETERS:
                connections.add(str(value))
            elif name == "target":
                targets.add(str(value))
    return sorted(connections), sorted(targets)


def _read_document(path: Path, option: str) -> dict[str, Any]:
    """A JSON (by its suffix) or YAML mapping; unreadable, malformed or not a mapping is a usage error
    naming `option` and the file."""
    try:
        text = path.read_text()
    except OSError as unreadable:
        raise CliError(f"{option} {path}: {unreadable.strerror}", ExitCode.USAGE) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except ValueError as broken:  # json.JSONDecodeError
        raise CliError(f"{option} {path}: not valid JSON ({broken})", ExitCode.USAGE) from None
    except yaml.YAMLError as broken:
        problem = " ".join(str(broken).split())
        raise CliError(f"{option} {path}: not valid YAML ({problem})", ExitCode.USAGE) from None
    if not isinstance(data, dict):
        raise CliError(f"{option} {path}: write a mapping, not {type(data).__name__}", ExitCode.USAGE)
    return data


def blocks_file(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """The connections and targets of a `--file` (docs/first-tenant-blocks.yaml is an example), by
    name."""
    data = _read_document(path, "--file")
    from ppcmk_blocks import APPROVALS_BLOCK

    unknown = sorted(set(data) - {"connections", "targets", "approvals"})
    if unknown:
        raise CliError(f"--file {path}: no such key {', '.join(unknown)}; the keys are connections, targets "
                       "and approvals", ExitCode.USAGE)
    approvals = data.get("approvals")
    return {"connections": data.get("connections") or {}, "targets": data.get("targets") or {},
            "approvals": {APPROVALS_BLOCK: approvals} if approvals else {}}


def _from_sandbox(connections: list[str], targets: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    from ppcmk_blocks import APPROVALS_BLOCK
    from ppcmk_cli.profile import load_profile
    from ppcmk_cli.sandbox_blocks import (
        SANDBOX_APPROVALS_APP,
        SANDBOX_APPROVALS_URI,
        sandbox_connection_data,
        sandbox_target_data,
    )
    from ppcmk_deployments.catalog import SandboxBlocks

    profile = load_profile()
    personas = set(SandboxBlocks().persona_blocks())
    unknown = [name for name in connections if name not in personas]
    if unknown:
        raise CliError(f"--sandbox: no sandbox persona for connection block(s) {', '.join(unknown)}; the "
                       f"personas are {', '.join(sorted(personas))}", ExitCode.USAGE)
    return {"connections": {name: sandbox_connection_data(profile, name) for name in connections},
            "targets": {name: sandbox_target_data(profile) for name in targets},
            "approvals": {APPROVALS_BLOCK: {"app_id": SANDBOX_APPROVALS_APP,
                                            "app_id_uri": SANDBOX_APPROVALS_URI}}}


def _unknown_fields(fields: Any, known: Iterable[str]) -> str | None:
    """What is wrong with a block's fields as written, before the block validates their values."""
    if not isinstance(fields, dict):
        return ": write the block's fields as a mapping"
    unknown = sorted(set(fields) - set(known))
    return f".{unknown[0]}: no such field; the fields are {', '.join(known)}" if unknown else None


def validated_blocks(data: dict[str, dict[str, dict[str, Any]]], connections: list[str],
               targets: list[str]) -> list[tuple[str, Any]]:
    """Every block the deployments need, validated; all problems at once, before anything is saved."""
    from pydantic import ValidationError

    from ppcmk_blocks import CmkApprovals, CmkConnection, CmkTarget
    from ppcmk_cli.errors import describe_validation_error

    problems: list[str] = []
    ready: list[tuple[str, Any]] = []
    approvals = list(data["approvals"])  # the approvals app, when given: one block, by its fixed name
    for kind, names, model in (("connections", connections, CmkConnection), ("targets", targets, CmkTarget),
                               ("approvals", approvals, CmkApprovals)):
        for name in names:
            if name not in data[kind]:
                problems.append(f"{kind}.{name}: missing (deployments/prefect.yaml uses it)")
                continue
            if (problem := _unknown_fields(data[kind][name], model.model_fields)) is not None:
                problems.append(f"{kind}.{name}{problem}")
                continue
            try:
                block = model.model_validate(data[kind][name])
                block.settings()
            except (ValidationError, ValueError) as bad:
                detail = describe_validation_error(bad) if isinstance(bad, ValidationError) else str(bad)
                problems.append(f"{kind}.{name}: {detail}")
                continue
            ready.append((name, block))
    if problems:
        raise CliError("nothing was saved: " + "; ".join(problems), ExitCode.USAGE)
    return ready


def setup_blocks(
    file: Annotated[Path | None, typer.Option(
        "--file", help="JSON or YAML: {connections: {NAME: {...}}, targets: {NAME: {...}}}, fields as in "
                       "the block forms")] = None,
    sandbox: Annotated[bool, typer.Option("--sandbox", help="fill them from the running sandbox "
                                          "(`ppcmk sandbox up`), one persona per connection")] = False,
    prefect_file: Annotated[Path, typer.Option(
        help="the deployments whose block names to create")] = PREFECT_FILE,
) -> None:
    """Create (or update) the connection and target blocks the deployments use, all or none."""
    if (file is None) == (not sandbox):
        raise CliError("give --file FILE or --sandbox (one of them)", ExitCode.USAGE)
    connections, targets = block_names(prefect_file)
    data = blocks_file(file) if file is not None else _from_sandbox(connections, targets)
    ready = validated_blocks(data, connections, targets)
    with prefect_api():
        for name, block in ready:
            block.save(name, overwrite=True)
    console.print(f"blocks saved: connections {', '.join(connections)}; targets {', '.join(targets)}",
                  highlight=False)


def _checked_block(option: str, block: str) -> str:
    """An existing storage block the workers are to use, refused naming `option` unless it can serve."""
    from ppcmk.worker_setup import storage_block_fault

    if (fault := storage_block_fault(block)) is not None:
        raise CliError(f"{option}: {fault}. Fix: create the block first (Prefect UI: Blocks, or the block "
                       "class's save()) and name it as TYPE/NAME, or give --shared-dir DIR instead",
                       ExitCode.USAGE)
    return block


def _storage_references(shared_dir: Path | None, results_block: str | None,
                        audit_block: str | None) -> tuple[str, str]:
    """The result storage and audit store blocks: the given ones, checked before anything is saved, and a
    LocalFileSystem below `shared_dir` for each one not given."""
    from prefect.filesystems import LocalFileSystem

    if shared_dir is None and (results_block is None or audit_block is None):
        option = ("--shared-dir" if results_block is None and audit_block is None
                  else "--results-block" if results_block is None else "--audit-block")
        raise CliError(f"{option}: missing. Fix: give --shared-dir DIR, or both --results-block and "
                       "--audit-block", ExitCode.USAGE)
    given = {RESULTS_BLOCK: ("--results-block", results_block), AUDIT_BLOCK: ("--audit-block", audit_block)}
    chosen = {name: None if block is None else _checked_block(option, block)
              for name, (option, block) in given.items()}
    for name, folder in ((RESULTS_BLOCK, "results"), (AUDIT_BLOCK, "audit")):
        if chosen[name] is None:
            assert shared_dir is not None
            (shared_dir / folder).mkdir(parents=True, exist_ok=True)
            LocalFileSystem(basepath=str((shared_dir / folder).resolve())).save(name, overwrite=True)
            chosen[name] = f"local-file-system/{name}"
    return str(chosen[RESULTS_BLOCK]), str(chosen[AUDIT_BLOCK])


def setup_workers(
    shared_dir: Annotated[Path | None, typer.Option(help="a folder every worker mounts at this path: "
                                                    "result storage and the audit store go below it")] = None,
    results_block: Annotated[str | None, typer.Option(help="or an existing storage block TYPE/NAME "
                                                      "for results (e.g. s3-bucket/ppcmk-results)")] = None,
    audit_block: Annotated[str | None, typer.Option(help="and one for the audit store")] = None,
    heartbeat_seconds: Annotated[int, typer.Option(min=30, help="PREFECT_FLOWS_HEARTBEAT_FREQUENCY of the "
                                                   "workers (prefect.yaml sets 30)")] = 30,
    missed_heartbeats: Annotated[int, typer.Option(min=1, help="heartbeats a run may miss before it is "
                                                   "marked Crashed")] = 2,
) -> None:
    """Shared storage blocks, the zombie-run automation and the audit lock; prints the workers' settings."""
    from ppcmk.audit.store import AUDIT_STORAGE_SETTING, ensure_audit_limit
    from ppcmk.worker_setup import RESULTS_SETTING
    from ppcmk_deployments.crash_detection import ensure_zombie_automation

    with prefect_api() as client:
        results, audit = _storage_references(shared_dir, results_block, audit_block)
        automation = ensure_zombie_automation(client, heartbeat_seconds, missed_heartbeats)
        ensure_audit_limit()
    console.print(f"automation ready: {automation}", highlight=False)
    console.print("Start every worker with:", highlight=False)
    typer.echo(f"{RESULTS_SETTING}={results}\n{AUDIT_STORAGE_SETTING}={audit}")
