"""`ppcmk sandbox ...`: run the offline sandbox cloud and steer a running one (clock, faults)."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ppcmk_cli.durations import parse_duration
from ppcmk_cli.errors import OneLineErrors
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.profile import SandboxAdmin, SandboxProfile, load_profile, remove_profile, save_profile

console = Console()
notes = Console(stderr=True)  # `sandbox up` keeps stdout for its one JSON line

# `ppcmk sandbox` runs it as the top group (ppcmk_cli.main), so it ends errors as the whole command does
sandbox_app = typer.Typer(help="Run the offline sandbox cloud and steer a running one.",
                          no_args_is_help=True, cls=OneLineErrors)
clock_app = typer.Typer(help="Read or move the sandbox's virtual clock.", no_args_is_help=True)
faults_app = typer.Typer(help="Inject or clear faults (throttling, errors, latency) in a running sandbox.",
                         no_args_is_help=True)
sandbox_app.add_typer(clock_app, name="clock")
sandbox_app.add_typer(faults_app, name="faults")


def resolve_scenario(scenario: str) -> str:
    """A scenario is a name shipped with the sandbox, `fleet:<n>` or a path; a path must exist."""
    from ppcmk_sandbox.scenarios import scenario_dir

    looks_like_path = os.sep in scenario or scenario.endswith(".json") or scenario.startswith(".")
    if looks_like_path and not Path(scenario).exists():
        raise CliError(f"--scenario: {scenario} does not exist; give a scenario name (e.g. default) or an "
                       "existing scenario directory", ExitCode.USAGE)
    if looks_like_path:
        return str(Path(scenario).resolve())
    if scenario.startswith("fleet:"):
        if not scenario.removeprefix("fleet:").isdigit():
            raise CliError(f"--scenario {scenario}: write fleet:<number of environments>, e.g. "
                           "fleet:500", ExitCode.USAGE)
        return scenario
    try:
        scenario_dir(scenario)
    except ValueError as unknown:
        raise CliError(f"--scenario: {unknown}", ExitCode.USAGE) from None
    return scenario


def checked_scenario(scenario: str, clock_speed: float) -> str:
    """Validate what `sandbox up` and `serve` are given, before anything starts; the scenario to load."""
    if clock_speed < 0:
        raise CliError("--clock-speed must be 0 (virtual time, moved by runbooks) or positive "
                       "(real time times X)", ExitCode.USAGE)
    return resolve_scenario(scenario)


# what binding the main port can fail with (taken, privileged, not a local address)
LISTEN_ERRORS = (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)


def _port_error(port: int, error: OSError) -> CliError:
    return CliError(f"--port {port}: the sandbox could not listen ({error.strerror or error}); "
                    "choose another port or 0 for any free port", ExitCode.USAGE)


def _publish_profile(server: Any, scenario: str, state_file: Path | None) -> Path:
    profile = SandboxProfile.from_endpoints(
        server.endpoints, scenario=scenario, state_file=str(state_file) if state_file else None,
        pid=os.getpid(),
    )
    return save_profile(profile)


def start_sandbox(scenario: str, state_file: Path | None, port: int, clock_speed: float) -> tuple[Any, Path]:
    """Start the sandbox in this process (for `ppcmk serve`, which runs more beside it) and publish its
    profile; returns (sandbox, profile path)."""
    from ppcmk_sandbox import Sandbox

    server = Sandbox(scenario=checked_scenario(scenario, clock_speed),
                     state_file=str(state_file) if state_file else None, port=port, clock_speed=clock_speed)
    try:
        server.start()
    except OSError as error:
        if error.errno not in LISTEN_ERRORS:
            raise
        raise _port_error(port, error) from error
    return server, _publish_profile(server, scenario, state_file)


@sandbox_app.command("up")
def sandbox_up(
    port: Annotated[int, typer.Option(
        min=0, max=65535, help="Port of the main origin (0 = any free port).")] = 0,
    state: Annotated[Path | None, typer.Option(help="Persist the cloud's state in this JSON file.")] = None,
    scenario: Annotated[str, typer.Option(help="Scenario name (sandbox/scenarios) or a scenario directory.")]
    = "default",
    clock_speed: Annotated[
        float, typer.Option(help="0 = virtual clock moved only by runbooks; X = real time times X.")
    ] = 0.0,
) -> None:
    """Run the sandbox cloud in the foreground until Ctrl-C; other commands find it through the profile.

    Prints the endpoints as one JSON line on stdout (as `python -m ppcmk_sandbox up` does); the human summary
    goes to stderr."""
    from ppcmk_sandbox import serve_forever

    resolved = checked_scenario(scenario, clock_speed)
    started = False

    def announce(server: Any) -> None:
        nonlocal started
        started = True
        path = _publish_profile(server, scenario, state)
        endpoints = server.endpoints
        notes.print(f"[bold green]Sandbox cloud up[/] at {endpoints.url} (scenario {scenario})")
        notes.print(f"  CA certificate: {endpoints.ca}")
        notes.print(f"  authority: {endpoints.authority}/{endpoints.tenant_id}")
        notes.print(f"  principals' secrets, certificates and passwords: {endpoints.credentials}")
        for name, origin in sorted(dict(endpoints.vaults).items()):
            notes.print(f"  vault {name}: {origin}")
        notes.print(f"  profile: {path}  (Ctrl-C stops the sandbox)")

    try:
        serve_forever(port=port, state_file=state, scenario=resolved, clock_speed=clock_speed,
                      on_ready=announce)
    except OSError as error:
        if started or error.errno not in LISTEN_ERRORS:
            raise
        raise _port_error(port, error) from error
    finally:
        if started:
            remove_profile(os.getpid())
            notes.print("Sandbox stopped.")


@clock_app.command("show")
def clock_show() -> None:
    """Print the sandbox's current (virtual) time."""
    with SandboxAdmin(load_profile()) as admin:
        console.print(admin.clock().get("now", "?"))


@clock_app.command("advance")
def clock_advance(
    duration: Annotated[str, typer.Argument(help="How far to move the clock, e.g. 90s, 15m, 2h, 7d, 1d12h.")],
) -> None:
    """Move the virtual clock forward (long-running operations progress, lock deadlines come closer)."""
    seconds = parse_duration(duration).total_seconds()
    with SandboxAdmin(load_profile()) as admin:
        answer = admin.advance_clock(seconds)
    console.print(f"Sandbox clock is now {answer.get('now', '?')}")


@faults_app.command("add")
def faults_add(
    path: Annotated[str, typer.Option(help="Regular expression matched against the request path.")],
    status: Annotated[int, typer.Option(help="HTTP status to answer with (e.g. 429, 503, 409).")] = 503,
    method: Annotated[str | None, typer.Option(help="Only this HTTP method (default: any).")] = None,
    times: Annotated[int | None, typer.Option(min=1, help="Fire this many times, then stop (default: "
                                                          "always).")] = None,
    retry_after: Annotated[str | None, typer.Option(help="Retry-After header value to send.")] = None,
    latency: Annotated[float, typer.Option(min=0, help="Extra seconds before answering.")] = 0.0,
    probability: Annotated[float, typer.Option(help="Chance (0-1) that a matching request is hit.")] = 1.0,
    drop: Annotated[bool, typer.Option(help="Drop the connection instead of answering.")] = False,
) -> None:
    """Add a fault rule to the running sandbox."""
    if not 0.0 <= probability <= 1.0:
        raise CliError("--probability must be between 0 and 1", ExitCode.USAGE)
    if not 100 <= status <= 599:
        raise CliError("--status must be an HTTP status code between 100 and 599", ExitCode.USAGE)
    try:
        re.compile(path)
    except re.error as broken:
        raise CliError(f"--path {path!r}: not a regular expression ({broken}); escape special "
                       r"characters with \, e.g. /keys/cmk-prod/", ExitCode.USAGE) from None
    rule: dict[str, Any] = {"path": path, "status": status, "latency": latency, "probability": probability,
                            "drop": drop}
    optional = {"method": method.upper() if method else None, "times": times, "retry_after": retry_after}
    rule.update({name: value for name, value in optional.items() if value is not None})
    with SandboxAdmin(load_profile()) as admin:
        answer = admin.add_fault(rule)
    rule_id = answer.get("id", answer) if isinstance(answer, dict) else answer
    console.print(f"Fault added (rule {rule_id}): {method or 'any method'} {path} -> {status}")


@faults_app.command("clear")
def faults_clear() -> None:
    """Remove every fault rule from the running sandbox."""
    with SandboxAdmin(load_profile()) as admin:
        admin.clear_faults()
    console.print("All faults cleared.")
