"""`ppcmk demo`: the whole CMK story on a throwaway sandbox and a throwaway Prefect backend, no configuration.

Everything lives in a temporary directory ($PPCMK_HOME for the audit log and profile, PREFECT_HOME and the
Prefect database) and is gone afterwards. Time is virtual: runbooks advance the sandbox clock instead of
waiting, so four-day encryptions and 28-day holds take milliseconds.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from prefect.settings import PREFECT_API_URL, temporary_settings
from rich.console import Console

from ppcmk_cli.demo_backend import ensure_template, template_path, throwaway_prefect
from ppcmk_cli.exit_codes import ExitCode
from ppcmk_cli.profile import SandboxProfile, save_profile
from ppcmk_cli.sandbox_blocks import register_sandbox_blocks

console = Console()

# Prefect's own per-run log lines would interleave with the narration; the story prints what matters.
QUIET_LOGGERS = ("prefect", "prefect.flow_runs", "prefect.task_runs", "ppcmk", "httpx")


@contextmanager
def environment(**variables: str) -> Iterator[None]:
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def quiet_logs(level: int = logging.ERROR) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, old in zip(loggers, previous, strict=True):
            logger.setLevel(old)


@contextmanager
def demo_world(workdir: Path) -> Iterator[tuple[Any, SandboxProfile, Callable[[], str]]]:
    """The in-process sandbox (default scenario) and a throwaway Prefect server starting in the background,
    both on 127.0.0.1; the third value waits for the server and returns its API URL."""
    with ExitStack() as stack:
        stack.enter_context(environment(PPCMK_HOME=str(workdir / "ppcmk")))
        prefect_ready = stack.enter_context(throwaway_prefect(workdir / "prefect"))
        from ppcmk_sandbox import Sandbox  # imported while the Prefect server starts

        cloud = stack.enter_context(Sandbox(scenario="default"))
        profile = SandboxProfile.from_endpoints(cloud.endpoints, pid=os.getpid())
        save_profile(profile)
        console.print(f"Sandbox cloud at {profile.url}; a throwaway Prefect server is starting.", style="dim")
        yield cloud, profile, prefect_ready


def demo(
    keep: Annotated[bool, typer.Option(help="Keep the temporary directory (audit log) and print its path.")]
    = False,
    prepare: Annotated[bool, typer.Option(help="Only prepare the cached Prefect database the demo copies "
                                               "(`make install` runs this).")] = False,
) -> None:
    """The whole CMK story on an embedded sandbox and a throwaway Prefect server (one to two minutes)."""
    if prepare or not template_path().exists():
        with console.status("Preparing the Prefect database once (schema migrations) ..."):
            console.print(f"Prefect database template: {ensure_template()}", style="dim")
        if prepare:
            return
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ppcmk-demo-"))
    with quiet_logs(), demo_world(workdir) as (cloud, profile, prefect_ready):
        # imported while the Prefect server starts: the runbooks and the Azure SDKs take seconds to import
        from ppcmk_cli.demo_story import StoryTeller
        from ppcmk_cli.doctor import sandbox_inputs

        teller = StoryTeller(console, sandbox_inputs(), cloud.clock.now, workdir / "report", profile)
        checked = teller.doctor()  # needs no Prefect: runs while the server starts
        with console.status("Waiting for the throwaway Prefect server ..."):
            api_url = prefect_ready()
        console.print(f"Prefect server ready after {time.monotonic() - started:.0f} s.", style="dim")
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            result = teller.tell(register_sandbox_blocks(profile), checked)
    elapsed = time.monotonic() - started
    verdict = "[bold green]The story completed[/]" if result.ok else "[bold red]The story stopped[/]"
    console.print(f"{verdict} in {elapsed:.0f} s ({result.seconds:.0f} s of runbooks).")
    if keep:
        console.print(f"Audit log, report and state: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        console.print(f"{workdir} (the report, the audit log) is removed again; `ppcmk demo --keep` "
                      "keeps it.", style="dim")
    raise typer.Exit(int(ExitCode.OK if result.ok else ExitCode.FAILED))
