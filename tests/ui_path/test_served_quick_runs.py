"""The Prefect UI path through the API the UI uses: every deployment `ppcmk serve` publishes is started with
no parameters (Quick run) against the sandbox. None fails; rotate completes, cleanup right after it has
nothing to do (everything is on hold), the destructive runbooks only plan, onboard waits for its approval,
and that wait reaches a webhook on 127.0.0.1 through the notification automation, with the run's UI link."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactCollectionFilter,
    ArtifactCollectionFilterKey,
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.settings import PREFECT_API_URL

from ppcmk.safety.plan import DRY_RUN
from ppcmk_cli.sandbox_blocks import register_sandbox_blocks
from ppcmk_deployments.automations import NOTIFICATIONS, ensure_automations
from ppcmk_deployments.catalog import RUNBOOKS, SandboxBlocks
from ppcmk_deployments.serve import deployment_full_name
from ppcmk_deployments.wake import WAKE_FLOW_NAME
from tests.support.approving import approve_as
from tests.support.plans import plan_artifact, unnamed_ids
from tests.support.runs import forget_run_state
from tests.support.sandbox import profile
from tests.support.served import ROOT, serving, wait_for

# The served process, its flow-run children and the session's Prefect server: generous waits, busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

BLOCKS = SandboxBlocks.with_prefix("ui")  # beside the session's sandbox-* blocks, which other tests change
FINAL = ("Completed", "Dry run", "Failed", "Crashed", "Cancelled")
# cleanup right after rotate finds the previous version on hold; migrate_byok after onboard, whose Key Vault
# half creates the policy both use
PHASES = [["rotate", "report", "watch", "evidence", "change_policy", "revert", "lock", "unlock",
           WAKE_FLOW_NAME],
          ["cleanup", "onboard"], ["migrate_byok"]]


@dataclass
class Webhook:
    """A local HTTP endpoint that keeps every JSON body posted to it."""

    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def messages(self, containing: str) -> list[str]:
        texts = [f"{body.get('subject', '')}\n{body.get('text', '')}" for body in list(self.received)]
        return [text for text in texts if containing in text]


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hook.received.append(json.loads(body or b"{}"))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hook
    server.shutdown()


@pytest.fixture(scope="module")
def automations(prefect_backend: None, webhook: Webhook) -> Iterator[list[str]]:
    block = CustomWebhookNotificationBlock.model_validate(
        {"name": "ui-path", "url": webhook.url, "json_data": {"subject": "{{subject}}", "text": "{{body}}"}})
    block_id = block.save("ui-path-webhook", overwrite=True)
    with get_client(sync_client=True) as client:
        names = ensure_automations(client, block_id)
        assert ensure_automations(client, block_id) == names  # a second time changes nothing
        assert [len(client.read_automations_by_name(name)) for name in names] == [1] * len(NOTIFICATIONS)
        yield names
        for name in names:  # later tests on this server must not notify a webhook that is gone
            for automation in client.read_automations_by_name(name):
                client.delete_automation(automation.id)


@pytest.fixture(scope="module")
def served(sandbox_server: Any, prefect_backend: None, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`python -m ppcmk_deployments.serve` as `ppcmk serve` starts it, the deployments using ui-* blocks."""
    sandbox_server.reset()
    forget_run_state()  # other tests' locks on this session server name the reset policies
    register_sandbox_blocks(profile(sandbox_server), BLOCKS)
    home = tmp_path_factory.mktemp("ui-served")
    api_url = str(PREFECT_API_URL.value())
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_UI_URL": api_url.removesuffix("/api"),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_LOGGING_TO_API_ENABLED": "true",
           "PPCMK_HOME": str(home / "ppcmk-home"), "PPCMK_RETRY_DELAY_SCALE": "0", "PYTHONPATH": str(ROOT)}
    args = ["-m", "ppcmk_deployments.serve", "--limit", "4", "--blocks-prefix", "ui"]
    with serving(args, env, home / "serve.log") as child:
        yield child, home


def registered_by(client: SyncPrefectClient, flow_name: str, since: datetime) -> bool:
    """The deployment exists and this module's served process has (re)registered it."""
    try:
        deployment = client.read_deployment_by_name(deployment_full_name(flow_name))
    except Exception:  # not registered yet
        return False
    return deployment.updated is not None and deployment.updated >= since


def settled(client: SyncPrefectClient, run_id: UUID) -> str:
    """The state name once the run ended or waits (Paused/Suspended), else ''."""
    state = client.read_flow_run(run_id).state
    return state.name if state and (state.name in FINAL or state.is_paused()) else ""


@dataclass
class QuickRun:
    run_id: UUID
    state: str
    artifacts: dict[str, int]  # key → how many the run published


def published(client: SyncPrefectClient, run_id: UUID) -> dict[str, int]:
    counts: dict[str, int] = {}
    mine = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    for artifact in client.read_artifacts(artifact_filter=mine):
        counts[str(artifact.key)] = counts.get(str(artifact.key), 0) + 1
    return counts


def logged(run_id: UUID, text: str, child: subprocess.Popen[bytes]) -> str:
    """The run's log once it contains `text` (logs reach the API in batches, after the state)."""
    def lines() -> str:
        with get_client(sync_client=True) as client:
            found = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        joined = "\n".join(log.message for log in found)
        return joined if text in joined else ""
    return str(wait_for(f"{text!r} in the log of {run_id}", lines, 60, child))


@pytest.fixture(scope="module")
def quick_runs(served: tuple[subprocess.Popen[bytes], Path], automations: list[str]) -> dict[str, QuickRun]:
    """Every deployment started as Quick run does; each phase waits for the one before."""
    child, _ = served
    since = datetime.now(UTC).replace(microsecond=0)
    runs: dict[str, QuickRun] = {}
    with get_client(sync_client=True) as client:
        for phase in PHASES:
            started = {}
            for name in phase:
                wait_for(f"{name} deployment", partial(registered_by, client, name, since), 180, child)
                deployment = client.read_deployment_by_name(deployment_full_name(name))
                started[name] = client.create_flow_run_from_deployment(deployment.id).id  # no parameters
            for name, run_id in started.items():
                state = wait_for(f"{name} to end or wait", partial(settled, client, run_id), 240, child)
                runs[name] = QuickRun(run_id, state, published(client, run_id))
    return runs


def test_every_served_deployment_runs_from_quick_run_without_failing(quick_runs: dict[str, QuickRun]) -> None:
    assert set(quick_runs) == {*RUNBOOKS, WAKE_FLOW_NAME}
    failed = {name: run.state for name, run in quick_runs.items()
              if run.state not in ("Completed", "Dry run", "Suspended", "Paused")}
    assert not failed, failed


def test_quick_runs_do_the_sensible_thing(quick_runs: dict[str, QuickRun],
                                          served: tuple[subprocess.Popen[bytes], Path]) -> None:
    child, home = served
    states = {name: run.state for name, run in quick_runs.items()}
    assert states["onboard"] == "Suspended" and states["rotate"] == "Completed", states
    logged(quick_runs["cleanup"].run_id, "nothing can be cleaned up yet", child)  # not a Failed HoldActive
    logged(quick_runs["unlock"].run_id, "nothing to do, the plan changes nothing (nothing is locked", child)
    for destructive in ("change_policy", "revert", "lock"):
        logged(quick_runs[destructive].run_id,
               "dry run — nothing was changed; a run without dry_run would", child)
    for destructive in ("change_policy", "revert", "lock"):
        assert states[destructive] == "Dry run", destructive  # the runs list says so
        assert quick_runs[destructive].artifacts == {f"{destructive.replace('_', '-')}-plan": 1}, destructive
    # the served process's working directory stays clean: the report writes under its PPCMK_HOME
    inventory = home / "ppcmk-home" / "reports" / "cmk-inventory.csv"
    assert inventory.exists()
    logged(quick_runs["report"].run_id, str(inventory), child)
    # and the evidence pack under it too, published as a link and a summary
    assert list((home / "ppcmk-home" / "evidence").glob("*/manifest.json"))
    assert quick_runs["evidence"].artifacts == {"evidence-pack": 1, "evidence-summary": 1}


def test_a_dry_run_quick_run_reads_as_one_and_onboard_names_what_its_plan_identifies(
        quick_runs: dict[str, QuickRun]) -> None:
    """What the UI shows: the state in the runs list, the plan artifact's heading, the ids named."""
    with get_client(sync_client=True) as client:
        for destructive in ("change_policy", "revert", "lock"):
            state = client.read_flow_run(quick_runs[destructive].run_id).state
            assert state is not None and state.name == "Dry run" and DRY_RUN in (state.message or "")
            description, _ = plan_artifact(quick_runs[destructive].run_id, destructive)
            assert description.startswith(f"## {destructive}: {DRY_RUN}"), description
    description, rows = plan_artifact(quick_runs["onboard"].run_id, "onboard")
    assert not unnamed_ids(description, rows), (description, rows)
    assert "**Requested by:** Key Vault Admin (kv-admin@contoso.example)" in description


def test_a_run_publishes_its_plan_once(quick_runs: dict[str, QuickRun]) -> None:
    assert quick_runs["rotate"].artifacts == {"rotate-plan": 1, "rotate-cmk-prod-history": 1}
    # onboard re-planned for the hand-off of the Power Platform half: the same artifact, updated
    assert quick_runs["onboard"].artifacts == {"onboard-plan": 1}


def test_the_approval_wait_reaches_the_webhook_with_the_ui_link(
        quick_runs: dict[str, QuickRun], webhook: Webhook, served: tuple[subprocess.Popen[bytes], Path]
) -> None:
    onboard = quick_runs["onboard"]
    link = f"/runs/flow-run/{onboard.run_id}"
    (message,) = wait_for("the approval notification", lambda: webhook.messages(link), 120, served[0])
    assert "onboard run" in message and "waits for approval" in message
    assert "Who may approve: the Power Platform admin" in message, message
    assert "Reader on policy ep-cmk-europe" in message, message
    # the webhook hears every ppcmk run on the session server (other tests' runs fail on purpose, and run
    # names are not unique): only the Quick runs count here, by id
    failed = webhook.messages("ended Failed") + webhook.messages("ended Crashed")
    mine = [f"logs {run.run_id}" for run in quick_runs.values()]
    assert not [text for text in failed if any(line in text for line in mine)], failed


def test_the_approved_onboard_run_completes_without_republishing_its_plan(
        quick_runs: dict[str, QuickRun], served: tuple[subprocess.Popen[bytes], Path],
        sandbox_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path / "cli-home"))
    onboard = quick_runs["onboard"].run_id
    approved = approve_as(sandbox_server, "pp-admin", tmp_path / "cli-home", str(onboard))
    assert approved.exit_code == 0, approved.output
    with get_client(sync_client=True) as client:
        final = wait_for("onboard to finish", lambda: (name := settled(client, onboard)) in FINAL and name,
                         240, served[0])
        assert final == "Completed"
        # resumed, it ran from the top again and re-planned: still one plan artifact, and one result table
        assert published(client, onboard) == {"onboard-plan": 1, "onboard-result": 1}
        result = client.read_latest_artifacts(artifact_filter=ArtifactCollectionFilter(
            key=ArtifactCollectionFilterKey(any_=["onboard-result"])))[0]
    rows = json.loads(result.data) if isinstance(result.data, str) else result.data
    columns = list(rows[0])
    assert columns[0] == "name" and columns[-1] == "environment_id", columns


def test_a_failed_run_reaches_the_webhook_with_its_reason(
        quick_runs: dict[str, QuickRun], webhook: Webhook, served: tuple[subprocess.Popen[bytes], Path]
) -> None:
    """The link in this one is `flow_run|ui_url`, rendered by the server from its PREFECT_UI_URL (which
    `ppcmk serve` sets; the session's test server has none)."""
    child, _ = served
    with get_client(sync_client=True) as client:
        report = client.read_deployment_by_name(deployment_full_name("report"))
        run = client.create_flow_run_from_deployment(report.id, parameters={"connection": "no-such-block"})
        assert wait_for("the report run to fail", partial(settled, client, run.id), 240, child) == "Failed"
    logs_command = f"prefect flow-run logs {run.id}"
    (message,) = wait_for("the failure notification", lambda: webhook.messages(logs_command), 120, child)
    assert f"report run {run.name} ended Failed" in message and "no-such-block" in message, message
