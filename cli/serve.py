"""`ppcmk serve`: Prefect server + UI, the sandbox with persisted state, sandbox blocks, every deployment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from prefect.settings import PREFECT_API_URL, temporary_settings
from rich.console import Console

from ppcmk.approvals.request import SIGN_IN_PAGE_SETTING
from ppcmk.home import ppcmk_home
from ppcmk.identity.settings import AZURE_CLI_APP_ID
from ppcmk.identity.signin import SignIn
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.prefect_app import server_command
from ppcmk_cli.profile import SandboxProfile, remove_profile, save_profile
from ppcmk_cli.proof_page import ProofPage
from ppcmk_cli.sandbox_blocks import SANDBOX_APPROVALS_URI, register_sandbox_blocks
from ppcmk_cli.sandbox_cmds import checked_scenario, start_sandbox
from ppcmk_cli.setup import checked_notification, create_automations
from ppcmk_deployments.catalog import (
    FIRST_ENVIRONMENTS,
    KV_ADMIN_UPN,
    PP_ADMIN_UPN,
    SandboxBlocks,
    sandbox_deployment_name,
)

console = Console()
SERVER_START_TIMEOUT = 90.0


def healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_prefect_server(home: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    """A Prefect server with UI on 127.0.0.1, SQLite under `home`; returns (process, API URL)."""
    api_url = f"http://127.0.0.1:{port}/api"
    if healthy(api_url):
        raise CliError(f"--prefect-port {port}: a Prefect server already answers there; stop it, choose "
                       "another port, or set PREFECT_API_URL to use it", ExitCode.USAGE)
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # the UI's own address (links in notifications) and the API its pages call: both on this port
        "PREFECT_UI_URL": f"http://127.0.0.1:{port}",
        "PREFECT_UI_API_URL": api_url,
    }
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("ab")
    process = subprocess.Popen(
        server_command(port, log_level="warning"), env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not healthy(api_url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise CliError(f"the Prefect server did not start; see {home / 'server.log'}",
                           ExitCode.UNAVAILABLE)
        time.sleep(0.3)
    return process, api_url


def start_deployments(api_url: str, limit: int, sign_in_page: str) -> subprocess.Popen[bytes]:
    # the runs' own links (logs, approval notifications, the sign-in page on their forms) point here
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_UI_URL": api_url.removesuffix("/api"),
           SIGN_IN_PAGE_SETTING: sign_in_page}
    return subprocess.Popen([sys.executable, "-m", "ppcmk_deployments.serve", "--limit", str(limit)], env=env,
                            start_new_session=True)


def stop_process(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """Ask politely (SIGINT, like Ctrl-C), then insist."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_while_running(children: list[subprocess.Popen[bytes]]) -> None:
    """Block until Ctrl-C / SIGTERM, or until a child exits on its own (then report it)."""
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while True:
            for child in children:
                if child.poll() is not None:
                    raise CliError(f"{child.args!r} exited with {child.returncode}; "
                                   "stopping everything", ExitCode.FAILED)
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("\nStopping ...")
    finally:
        signal.signal(signal.SIGTERM, previous)


def start_sign_in_page(profile: SandboxProfile, port: int) -> ProofPage:
    """The sign-in page people with only a browser get their proof from, for the sandbox's tenant."""
    from ppcmk.cloud.endpoints import endpoints_for

    endpoints = endpoints_for("sandbox", profile.url)
    signin = SignIn(tenant_id=profile.tenant_id, authority=endpoints.authority,
                    instance_discovery=endpoints.instance_discovery, scope=f"{SANDBOX_APPROVALS_URI}/Approve",
                    client_id=AZURE_CLI_APP_ID)
    page = ProofPage(signin, port, ca_bundle=profile.ca)
    page.serve_in_background()
    return page


def banner(ui_url: str, profile: SandboxProfile, blocks: SandboxBlocks, notifications: list[str],
           sign_in_page: str) -> str:
    """What `ppcmk serve` prints once everything answers: the first run in the UI, step by step, and where the
    sandbox keeps its principals' secrets and passwords (the file, never its content)."""
    onboard = sandbox_deployment_name("onboard")
    notified = (f"Notifications: {', '.join(notifications)}." if notifications else
                "Notifications: none (add --notify TYPE/NAME or --notify-webhook-url URL).")
    return (
        f"[bold green]ppcmk is serving.[/] Prefect UI: [link={ui_url}]{ui_url}[/]  sandbox: {profile.url}\n"
        f"First run in the UI: [bold]Deployments[/] → [bold]{onboard}[/] → [bold]Run ▸ Quick run[/]. It "
        f"onboards {' and '.join(FIRST_ENVIRONMENTS)} as {KV_ADMIN_UPN} (block {blocks.kv_admin}), then "
        "shows [bold]Suspended[/]: the Power Platform admin's turn. Open the run, click [bold]Resume[/] "
        f"(the plan is on the form). Prove who you are: open {sign_in_page} and sign in as "
        f"{PP_ADMIN_UPN}, paste the proof into [bold]Your proof[/], Decision [bold]approve[/], Submit; the "
        "run links the environments and completes (or: `ppcmk approvals`, then `ppcmk approve RUN_ID`, "
        "which signs you in with a device code).\n"
        "Every other deployment also runs from Quick run; change_policy, revert and lock only plan there "
        "(dry run).\n"
        f"{notified} Rotation runs on its monthly schedule. Ctrl-C stops everything.\n"
        f"The sandbox people's passwords and its service principals' secrets: {profile.credentials}"
    )


def serve_notifications(notify: str | None, notify_webhook_url: str | None) -> list[str]:
    if notify is None and notify_webhook_url is None:
        return []
    return create_automations(notify, notify_webhook_url)


def checked_options(scenario: str, clock_speed: float, notify: str | None,
                    webhook_url: str | None) -> None:
    """What `serve` is given, checked before anything starts (a Prefect server takes a while)."""
    checked_scenario(scenario, clock_speed)
    if notify is not None or webhook_url is not None:
        checked_notification(notify, webhook_url, "--notify", "--notify-webhook-url")


def serve(
    prefect_port: Annotated[int, typer.Option(
        min=1, max=65535, help="Port of the Prefect server and UI.")] = 4200,
    sandbox_port: Annotated[int, typer.Option(
        min=1, max=65535, help="Fixed port of the sandbox (blocks point at it).")] = 8443,
    sign_in_port: Annotated[int, typer.Option(
        min=1, max=65535, help="Port of the sign-in page that gives people with only a browser their proof "
                               "(http://localhost:PORT/).")] = 4300,
    clock_speed: Annotated[float, typer.Option(help="Sandbox clock: real time times X (0 = only runbooks "
                                                     "move it).")] = 1.0,
    scenario: Annotated[str, typer.Option(help="Scenario for a fresh sandbox state.")] = "default",
    limit: Annotated[int, typer.Option(min=1, help="Maximum concurrent flow runs.")] = 4,
    notify: Annotated[str | None, typer.Option(help="Notify through this Prefect notification block "
                                                    "(TYPE/NAME, e.g. slack-webhook/ops) when a run waits "
                                                    "for approval or fails.")] = None,
    notify_webhook_url: Annotated[str | None, typer.Option(help="Or POST those notifications as JSON to "
                                                                "this URL.")] = None,
) -> None:
    """Prefect UI + sandbox + blocks + every runbook as a deployment, on 127.0.0.1, until Ctrl-C."""
    checked_options(scenario, clock_speed, notify, notify_webhook_url)
    home = ppcmk_home()
    children: list[subprocess.Popen[bytes]] = []
    external_api = os.environ.get("PREFECT_API_URL")
    sandbox = None
    try:
        if external_api:
            if not healthy(external_api):
                raise CliError(f"PREFECT_API_URL={external_api} does not answer; start that server or unset "
                               "PREFECT_API_URL to let ppcmk serve start one", ExitCode.UNAVAILABLE)
            api_url = external_api
        else:
            console.print("Starting the Prefect server ...")
            server, api_url = start_prefect_server(home / "prefect", prefect_port)
            children.append(server)
        # Persisted state: a second `ppcmk serve` continues where the first left off.
        sandbox, _ = start_sandbox(scenario, home / "sandbox-state.json", sandbox_port, clock_speed)
        profile = SandboxProfile.from_endpoints(sandbox.endpoints, scenario=scenario, pid=os.getpid(),
                                                state_file=str(home / "sandbox-state.json"),
                                                prefect_api_url=api_url)
        save_profile(profile)
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            blocks = register_sandbox_blocks(profile)
            notifications = serve_notifications(notify, notify_webhook_url)
        sign_in_page = start_sign_in_page(profile, sign_in_port).redirect_uri
        children.append(start_deployments(api_url, limit, sign_in_page))
        console.print(banner(api_url.removesuffix("/api"), profile, blocks, notifications, sign_in_page))
        wait_while_running(children)
    finally:
        for child in reversed(children):
            stop_process(child)
        if sandbox is not None:
            sandbox.stop()
        remove_profile(os.getpid())
    console.print("Stopped. Run `ppcmk serve` again to continue where you left off.")
