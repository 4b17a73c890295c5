"""End to end: the served deployments in a subprocess. An onboard deployment run suspends at the Power
Platform hand-off (nothing changed yet); `ppcmk approve` refuses the requester's own answer before resuming
(exit 3), then answers as the Power Platform admin (a run input through Prefect's resume API, exit 0); the
run parks during its links (no process held), is woken by `ppcmk runs wake` and completes with the
environments encrypted and no second link. change_policy parks in both of its outages (unlink, then link)
and revert in its unlink, each woken the same way, with one POST per operation; a revert rejected with
`ppcmk approve --reject` (exit 5) ends Rejected and unlinks nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from ppcmk.fleet.parking import PARK_KEY_PREFIX
from ppcmk_cli import app
from ppcmk_cli.sandbox_blocks import register_sandbox_blocks
from ppcmk_deployments.catalog import SandboxBlocks
from ppcmk_deployments.serve import deployment_full_name
from ppcmk_sandbox.powerplatform.records import OperationType
from tests.support.approving import approve_as, ppcmk_approve
from tests.support.sandbox import profile, save_target
from tests.support.scenario import FINANCE, KEY, LINKED_POLICY, PP_ADMIN, PRODUCTION, SANDBOX

# Three processes (serve, its flow-run child, the Prefect server) start: generous waits for a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = [PRODUCTION, SANDBOX]
# Own block names: the session's `sandbox-*` blocks point at another target and other tests rely on them.
E2E_BLOCKS = SandboxBlocks(kv_admin="e2e-kv-admin", pp_admin="e2e-pp-admin", pp_admin_2="e2e-pp-admin-2",
                           runbook="e2e-runbook", target="e2e-target")


@pytest.fixture(scope="module")
def serve_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="module")
def served(sandbox_server: Any, prefect_backend: None, serve_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m ppcmk_deployments.serve` against the session Prefect server, polling every second; one for
    the module (each test's `cloud` resets the sandbox world, which the served process reaches over HTTPS)."""
    register_sandbox_blocks(profile(sandbox_server), E2E_BLOCKS)
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PPCMK_HOME": str(serve_dir / "ppcmk-home"),
           "PPCMK_RETRY_DELAY_SCALE": "0", "PYTHONPATH": str(ROOT)}
    log = (serve_dir / "serve.log").open("wb")
    child = subprocess.Popen([sys.executable, "-m", "ppcmk_deployments.serve", "--limit", "2"], cwd=ROOT,
                             env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield child
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        log.close()


def wait_for(what: str, check: Any, timeout: float, child: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        assert child.poll() is None, f"the served deployments exited with {child.returncode} waiting: {what}"
        time.sleep(0.25)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


def deployment_ready(client: SyncPrefectClient, name: str) -> bool:
    try:
        client.read_deployment_by_name(name)
    except Exception:  # not registered yet
        return False
    return True


def state_name(client: SyncPrefectClient, run_id: UUID) -> str:
    state = client.read_flow_run(run_id).state
    return state.name if state else ""


def flow_run_processes(serve_pid: int) -> list[int]:
    """Child processes of the serve process (each flow run executes in one)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == serve_pid and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


def pause_key(client: SyncPrefectClient, run_id: UUID) -> str:
    state = client.read_flow_run(run_id).state
    return (state.state_details.pause_key or "") if state and state.name == "Suspended" else ""


def test_served_onboard_parks_during_the_links_and_finishes_when_woken(
        served: subprocess.Popen[bytes], serve_dir: Path, cloud: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path / "cli-home"))
    link_duration = timedelta(seconds=cloud.world.settings.link_duration_seconds)
    deployment = deployment_full_name("onboard")
    with get_client(sync_client=True) as client:
        wait_for("the onboard deployment", lambda: deployment_ready(client, deployment), 120, served)
        flow_run = run_deployment(deployment, timeout=0, parameters={
            "kv_connection": E2E_BLOCKS.kv_admin, "pp_connection": E2E_BLOCKS.pp_admin,
            "target": E2E_BLOCKS.target, "pp_admin": PP_ADMIN, "requester": "kv-admin@contoso.example",
            "selector": {"environment_ids": ENVIRONMENTS}, "approval_poll_s": 1,
            # one wave, and a patience far below the sandbox's link duration (virtual minutes)
            "waves": {"canary_skus": [], "park_after_minutes": link_duration.total_seconds() / 60 / 6}})
        assert isinstance(flow_run, FlowRun)
        wait_for("Suspended at the hand-off", lambda: pause_key(client, flow_run.id).startswith("onboard-"),
                 120, served)
        assert all(cloud.world.powerplatform.environment(env).cmk is None for env in ENVIRONMENTS)
        # the requester's own block: refused before anything is submitted, the run still waits
        home = tmp_path / "approver-home"
        own = approve_as(cloud, "kv-admin", home, str(flow_run.id))
        assert own.exit_code == 3 and "cannot approve" in own.output, own.output
        assert pause_key(client, flow_run.id).startswith("onboard-")
        approved = approve_as(cloud, "pp-admin", home, str(flow_run.id), "--comment", "CHG-42")
        assert approved.exit_code == 0 and "Accepted" in approved.output, approved.output

        assert wait_for("parked", lambda: pause_key(client, flow_run.id), 120, served) == "ppcmk-park-1"
        wait_for("the flow-run process to exit", lambda: not flow_run_processes(served.pid), 30, served)
        assert all(not cloud.world.powerplatform.environment(env).cmk or
                   not cloud.world.powerplatform.environment(env).cmk.linked for env in ENVIRONMENTS)
        links = cloud.log.count(method="POST", path=r"/link$")
        assert links == len(ENVIRONMENTS)
        # a parked run waits for the waker, not for a person: the approval commands leave it alone
        listed = CliRunner().invoke(app, ["approvals", "--json"])
        assert listed.exit_code == 0, listed.output
        assert str(flow_run.id) not in [waiting["run_id"] for waiting in json.loads(listed.output)]
        refused = ppcmk_approve(cloud, home, None, str(flow_run.id))
        assert refused.exit_code != 0 and "runs wake" in refused.output, refused.output

        cloud.clock.advance(link_duration)  # the service finishes while the run holds no process
        woken = CliRunner().invoke(app, ["runs", "wake"])
        assert woken.exit_code == 0 and f"resumed {flow_run.id}" in woken.output, woken.output

        final = wait_for("the run to finish", lambda: (name := state_name(client, flow_run.id)) in (
            "Completed", "Failed", "Crashed") and name, 120, served)
        assert final == "Completed", (serve_dir / "serve.log").read_text()[-3000:]
    assert cloud.log.count(method="POST", path=r"/link$") == links  # the woken run polled; it never re-linked
    for env in ENVIRONMENTS:
        encrypted = cloud.world.powerplatform.environment(env)
        assert encrypted.cmk is not None and encrypted.key_managed_by == "Customer", env


FINAL_STATES = ("Completed", "Failed", "Crashed", "Cancelled")


def operation_posts(cloud: Any, environment_id: str, operation: str) -> int:
    path = rf"/{environment_id}/enterprisePolicies/Encryption/{operation}$"
    return cloud.log.count(method="POST", path=path)


def park_until_done(client: SyncPrefectClient, run_id: UUID, served: subprocess.Popen[bytes], cloud: Any,
                    environment_ids: list[str]) -> tuple[str, list[tuple[str, list[str]]]]:
    """Each time the run parks: note the key and the operations running at the service, wait for the run's
    process to exit, let the service finish (sandbox clock), and `ppcmk runs wake`. Returns the final state
    and the parks in order."""
    parks: list[tuple[str, list[str]]] = []
    settings = cloud.world.settings
    longest = timedelta(seconds=max(settings.link_duration_seconds, settings.unlink_duration_seconds))

    def parked_again_or_final() -> str:
        key = pause_key(client, run_id)
        if key.startswith(PARK_KEY_PREFIX) and key not in [seen for seen, _ in parks]:
            return key
        name = state_name(client, run_id)
        return name if name in FINAL_STATES else ""

    while (reached := wait_for("a park or the end", parked_again_or_final, 120, served)) not in FINAL_STATES:
        running = [cloud.world.powerplatform.active_operation(env) for env in environment_ids]
        parks.append((reached, [operation.type for operation in running if operation is not None]))
        wait_for("the flow-run process to exit", lambda: not flow_run_processes(served.pid), 30, served)
        cloud.clock.advance(longest)
        woken = CliRunner().invoke(app, ["runs", "wake"])
        assert woken.exit_code == 0 and f"resumed {run_id}" in woken.output, woken.output
    return reached, parks


def test_served_change_policy_and_revert_park_in_every_outage_and_finish_when_woken(
        served: subprocess.Popen[bytes], serve_dir: Path, sandbox_server: Any, cloud: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path / "cli-home"))
    old_target = save_target(sandbox_server, "e2e-target-existing", key_name=KEY, policy_name=LINKED_POLICY)
    new_target = save_target(sandbox_server, "e2e-target-new", key_name="cmk-new", policy_name="ep-new")
    moved = [FINANCE]
    shortest = min(cloud.world.settings.link_duration_seconds, cloud.world.settings.unlink_duration_seconds)
    # one wave, and a patience far below the sandbox's link and unlink durations (virtual minutes)
    waves = {"canary_skus": [], "park_after_minutes": shortest / 60 / 6}
    with get_client(sync_client=True) as client:
        for deployment in (deployment_full_name("change_policy"), deployment_full_name("revert")):
            wait_for(deployment, partial(deployment_ready, client, deployment), 120, served)
        change = run_deployment(deployment_full_name("change_policy"), timeout=0, parameters={
            "kv_connection": E2E_BLOCKS.kv_admin, "pp_connection": E2E_BLOCKS.pp_admin, "target": old_target,
            "new_policy_name": "ep-new", "new_key_name": "cmk-new", "pp_admin": PP_ADMIN,
            "requester": "kv-admin@contoso.example", "selector": {"environment_ids": moved},
            "approval_poll_s": 1, "waves": waves, "dry_run": False})  # a Quick run only plans
        assert isinstance(change, FlowRun)
        wait_for("Suspended at the hand-off",
                 lambda: pause_key(client, change.id).startswith("change-policy-"), 120, served)
        home = tmp_path / "approver-home"
        approved = approve_as(cloud, "pp-admin", home, str(change.id))
        assert approved.exit_code == 0, approved.output

        final, parks = park_until_done(client, change.id, served, cloud, moved)
        assert final == "Completed", (serve_dir / "serve.log").read_text()[-3000:]
        # outage 1 parks in its unlink; the woken run finds it done, links, and parks again in outage 2
        assert parks == [(f"{PARK_KEY_PREFIX}1", [OperationType.UNLINK]),
                         (f"{PARK_KEY_PREFIX}2", [OperationType.LINK])], parks
        for env in moved:
            on_new = cloud.world.powerplatform.environment(env)
            assert on_new.cmk is not None and on_new.cmk.policy_id.endswith("/ep-new"), env
            assert on_new.cmk.link_status == "Linked" and on_new.key_managed_by == "Customer", env
            # every wake polled the parked operation; none was started twice
            assert (operation_posts(cloud, env, "unlink"), operation_posts(cloud, env, "link")) == (1, 1), env

        def waiting_revert() -> FlowRun:
            run = run_deployment(deployment_full_name("revert"), timeout=0, parameters={
                "connection": E2E_BLOCKS.runbook, "target": new_target,
                "requester": "kv-admin@contoso.example", "selector": {"environment_ids": moved},
                "approval_poll_s": 1, "waves": waves, "dry_run": False})
            assert isinstance(run, FlowRun)
            wait_for("Suspended for approval", lambda: pause_key(client, run.id).startswith("revert"),
                     120, served)
            return run

        rejected_run = waiting_revert()
        rejected = approve_as(cloud, "pp-admin", home, str(rejected_run.id), "--reject", "--comment",
                              "not this week")
        assert rejected.exit_code == 5 and "ends Rejected" in rejected.output, rejected.output
        assert wait_for("the rejected run to end", lambda: state_name(client, rejected_run.id) == "Rejected",
                        60, served)
        assert all(operation_posts(cloud, env, "unlink") == 1 for env in moved)  # nothing after the plan

        revert = waiting_revert()
        approved = approve_as(cloud, "pp-admin", home, str(revert.id))
        assert approved.exit_code == 0, approved.output

        final, parks = park_until_done(client, revert.id, served, cloud, moved)
        assert final == "Completed", (serve_dir / "serve.log").read_text()[-3000:]
        assert parks == [(f"{PARK_KEY_PREFIX}1", [OperationType.UNLINK])], parks
    for env in moved:
        reverted = cloud.world.powerplatform.environment(env)
        assert reverted.cmk is None and reverted.key_managed_by == "Microsoft", env
        assert operation_posts(cloud, env, "unlink") == 2, env  # change_policy's one, then revert's one
