"""Several workers, one truth: a Prefect server on a real PostgreSQL (Debian's package, on 127.0.0.1), the
deployments of deployments/prefect.yaml on a process work pool and two process workers, set up with the
commands of docs/WORKERS.md. In one run, so one database, one server and one audit chain serve it all:

1. an onboard suspends at its hand-off on one worker, is approved and parks on the other, and is woken and
   completes on the first again (no second link);
2. a worker killed with -9 mid-link leaves its run Running until the zombie-run automation marks it
   Crashed within the heartbeat window; a re-run on the surviving worker converges with no second link;
3. meanwhile a revert and a change_policy of the same environment, started together, end with one of them
   refused at plan time naming the other, and only the other's operations at the service;
4. every audit entry of all of it forms one chain that `ppcmk audit verify` accepts; an edited entry is found.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from ppcmk.audit.trail import AuditLog
from ppcmk_blocks import CmkTarget
from ppcmk_cli import app
from ppcmk_cli.demo_backend import deliver_queued_events_and_logs
from ppcmk_cli.profile import SandboxProfile, save_profile
from ppcmk_cli.sandbox_blocks import sandbox_target_data
from tests.distributed.stack import POOL, PREFECT, Stack, descendants, wait_for
from tests.support.approving import approve_as
from tests.support.scenario import FINANCE, PRODUCTION, SANDBOX

# A PostgreSQL cluster, a Prefect server, two workers and about ten flow-run processes: 2.2 min on 2 idle
# cores, 5.5-6.5 min shared with other work (load average 11-17), 13 min at load average 25.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

PP_ADMIN = "pp-admin@contoso.example"
REQUESTER = "kv-admin@contoso.example"
ONBOARDED = [PRODUCTION, SANDBOX]
KILLED_MID_LINK = PRODUCTION
FINANCE_ON_CMK = FINANCE
FINAL = ("Completed", "Failed", "Crashed", "Cancelled")
HEARTBEAT_SECONDS, MISSED_HEARTBEATS = 30, 2
INLINE = {"canary_skus": [], "park_after_minutes": None}
SLOW_POLL_SECONDS = 45  # below the client's 60 s request timeout: one slow answer, no retry


@pytest.fixture
def stack(tmp_path: Path, cloud: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    built = Stack(tmp_path, cloud)
    with ExitStack() as cleanup:
        cleanup.callback(built.close)
        database_url = built.start_postgres()
        built.start_server(database_url)
        cleanup.callback(deliver_queued_events_and_logs)  # while the server still answers
        cleanup.enter_context(temporary_settings(updates={PREFECT_API_URL: built.api_url}))
        monkeypatch.setenv("PREFECT_API_URL", built.api_url)
        monkeypatch.setenv("PPCMK_HOME", str(tmp_path / "operator"))
        yield built


def cli(*arguments: str) -> str:
    result = CliRunner().invoke(app, list(arguments))
    assert result.exit_code == 0, f"ppcmk {' '.join(arguments)}: {result.output}"
    return str(result.output)


def set_up(stack: Stack) -> dict[str, str]:
    """docs/WORKERS.md steps 2-4: pool, deployments, blocks, shared storage; returns the workers' settings."""
    stack.run(PREFECT, "work-pool", "create", POOL, "--type", "process")
    stack.run(PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml")
    save_profile(SandboxProfile.from_endpoints(stack.sandbox.endpoints, pid=-1))
    cli("setup", "blocks", "--sandbox")
    printed = cli("setup", "workers", "--shared-dir", str(stack.shared), "--heartbeat-seconds",
                  str(HEARTBEAT_SECONDS), "--missed-heartbeats", str(MISSED_HEARTBEATS))
    lines = [line for line in printed.splitlines() if line.startswith(("PREFECT_", "PPCMK_"))]
    settings = dict(line.split("=", 1) for line in lines)
    with get_client(sync_client=True) as client:  # the waker is started by hand here, when each step wants it
        wake = client.read_deployment_by_name("ppcmk-wake/ppcmk-wake-production")
        for schedule in client.read_deployment_schedules(wake.id):
            client.update_deployment_schedule(wake.id, schedule.id, active=False)
    return settings


def state_of(client: SyncPrefectClient, run_id: UUID) -> tuple[str, str, str]:
    """(state name, pause key, message)"""
    state = client.read_flow_run(run_id).state
    if state is None:
        return "", "", ""
    return state.name or "", state.state_details.pause_key or "", state.message or ""


def workers_of(stack: Stack, run_id: UUID, event: str) -> set[str]:
    entries = AuditLog(stack.shared / "audit").of_run(str(run_id))
    return {e["by"].get("worker", "") for e in entries if e["event"].get("event") == event}


def start(deployment: str, **parameters: Any) -> UUID:
    run = run_deployment(deployment, timeout=0, parameters=parameters)
    assert isinstance(run, FlowRun)
    return run.id


def onboard(environments: list[str], waves: dict[str, Any]) -> UUID:
    return start("onboard/onboard-production", pp_admin=PP_ADMIN, requester=REQUESTER, approval_poll_s=1,
                 selector={"environment_ids": environments}, waves=waves)


def link_posts(cloud: Any, environment: str | None = None) -> int:
    return int(cloud.log.count(method="POST", path=rf"/{environment or '[^/]+'}/enterprisePolicies/"
                                                    r"Encryption/link$"))


def approve(stack: Stack, run_id: UUID) -> None:
    """Answer as the Power Platform admin, who signs in with a device code (`ppcmk approve`)."""
    answered = approve_as(stack.sandbox, "pp-admin", stack.home / "approver-home", str(run_id))
    assert answered.exit_code == 0, answered.output


def suspended_at(client: SyncPrefectClient, run_id: UUID, prefix: str) -> bool:
    name, key, _ = state_of(client, run_id)
    assert name not in FINAL, f"run {run_id} ended {name} while expected to suspend"
    return name == "Suspended" and key.startswith(prefix)


def final_state(client: SyncPrefectClient, run_id: UUID, timeout: float = 180) -> tuple[str, str, str]:
    return wait_for(f"run {run_id} to end", lambda: (s := state_of(client, run_id))[0] in FINAL and s,
                    timeout)


def idle(stack: Stack, worker: str) -> bool:
    return not descendants(stack.processes[worker].pid)


def worker_sequence(stack: Stack, run_id: UUID) -> list[tuple[str, str]]:
    """(event, worker) of the run's audit entries, in chain order."""
    return [(e["event"].get("event", ""), e["by"].get("worker", ""))
            for e in AuditLog(stack.shared / "audit").of_run(str(run_id))]


def onboard_crosses_workers(stack: Stack, client: SyncPrefectClient, settings: dict[str, str]) -> None:
    """Approved on one worker, parked there; woken, it completes on the other. One link per environment."""
    cloud = stack.sandbox
    link_duration = timedelta(seconds=cloud.world.settings.link_duration_seconds)
    patience_minutes = link_duration.total_seconds() / 60 / 6  # far below the link's (virtual) duration
    run_id = onboard(ONBOARDED, {"canary_skus": [], "park_after_minutes": patience_minutes})
    wait_for("the hand-off", lambda: suspended_at(client, run_id, "onboard-"), 240)
    planned_on = worker_sequence(stack, run_id)[0][1]
    approved_on = "worker-b" if planned_on == "worker-a" else "worker-a"
    wait_for("the suspended run's process to exit", lambda: idle(stack, planned_on), 60)
    stack.stop(planned_on)  # the approval can only be picked up by the other worker now
    approve(stack, run_id)
    wait_for("the park", lambda: state_of(client, run_id)[1] == "ppcmk-park-1", 240)
    assert ("onboard-parked", approved_on) in worker_sequence(stack, run_id)
    assert link_posts(cloud) == len(ONBOARDED)

    wait_for("the parked run's process to exit", lambda: idle(stack, approved_on), 60)
    stack.start_worker(planned_on, settings)
    stack.stop(approved_on)  # the wake can only be picked up by the first worker again
    cloud.clock.advance(link_duration)  # the service finishes while no process of the run exists
    assert f"resumed {run_id}" in cli("runs", "wake")
    name, _, message = final_state(client, run_id)
    assert name == "Completed", f"{message}\n{stack.log(planned_on)}"
    assert worker_sequence(stack, run_id)[-1] == ("onboard-finished", planned_on)
    assert link_posts(cloud) == len(ONBOARDED)  # the woken run polled its operations; it linked nothing again
    for environment in ONBOARDED:
        assert cloud.world.powerplatform.environment(environment).key_managed_by == "Customer", environment
    stack.start_worker(approved_on, settings)


def kill_a_worker_mid_link(stack: Stack, client: SyncPrefectClient) -> tuple[UUID, float]:
    """Once the link is started, the service answers its first status poll slowly, so the flow-run process is
    alive mid-link when its worker and all the worker's processes are killed with -9. Returns the run and
    when."""
    run_id = onboard([KILLED_MID_LINK], INLINE)
    wait_for("the hand-off", lambda: suspended_at(client, run_id, "onboard-"), 240)
    # the link's first status poll is answered slowly: the kill lands in that wait
    stack.sandbox.faults.add(method="GET", path=r"/lifecycleOperations/", status=None, times=1,
                             latency=SLOW_POLL_SECONDS)
    approve(stack, run_id)
    wait_for("the link to start", lambda: link_posts(stack.sandbox, KILLED_MID_LINK) == 1, 240)
    [victim] = [name for name in ("worker-a", "worker-b") if not idle(stack, name)]
    stack.stop(victim, signal.SIGKILL)
    stack.sandbox.faults.clear()
    assert state_of(client, run_id)[0] == "Running"  # nobody told the server
    return run_id, time.monotonic()


def revert_races_change_policy(stack: Stack, client: SyncPrefectClient) -> None:
    """Started together on the same environment: one claims it, the other's plan fails naming that run."""
    cloud = stack.sandbox
    CmkTarget.model_validate(sandbox_target_data(SandboxProfile.from_endpoints(cloud.endpoints, pid=-1))
                             | {"key_name": "cmk-prod", "policy_name": "ep-existing"}).save(
        "target-existing", overwrite=True)
    selector = {"environment_ids": [FINANCE_ON_CMK]}
    runs = {
        "revert": start("revert/revert-production", target="target-existing", requester=REQUESTER,
                        selector=selector, approval_poll_s=1, waves=INLINE),
        "change_policy": start("change_policy/change_policy-production", target="target-existing",
                               new_policy_name="ep-new", new_key_name="cmk-new", pp_admin=PP_ADMIN,
                               requester=REQUESTER, selector=selector, approval_poll_s=1, waves=INLINE),
    }

    def settled() -> dict[str, tuple[str, str, str]] | None:
        states = {name: state_of(client, run_id) for name, run_id in runs.items()}
        return states if all(s[0] in (*FINAL, "Suspended") for s in states.values()) else None

    states = wait_for("both plans", settled, 240)
    [winner] = [name for name, state in states.items() if state[0] == "Suspended"]
    [loser] = [name for name, state in states.items() if state[0] == "Failed"]
    winner_name = client.read_flow_run(runs[winner]).name
    assert "claim.held" in states[loser][2] and winner_name in states[loser][2], states[loser][2]
    approve(stack, runs[winner])
    name, _, message = final_state(client, runs[winner])
    assert name == "Completed", message
    environment = cloud.world.powerplatform.environment(FINANCE_ON_CMK)
    posts = {op: int(cloud.log.count(method="POST", path=rf"/{FINANCE_ON_CMK}/enterprisePolicies/"
                                                         rf"Encryption/{op}$")) for op in ("link", "unlink")}
    if winner == "revert":
        assert environment.cmk is None and posts == {"link": 0, "unlink": 1}, posts
    else:
        assert environment.cmk.policy_id.endswith("/ep-new") and posts == {"link": 1, "unlink": 1}, posts


def rerun_converges(stack: Stack, client: SyncPrefectClient, crashed: UUID, killed_at: float) -> float:
    """The crashed run is Crashed within the heartbeat window; its re-run links nothing a second time."""
    window = HEARTBEAT_SECONDS * MISSED_HEARTBEATS
    name, _, message = final_state(client, crashed, timeout=window + 90)
    crashed_after = time.monotonic() - killed_at
    assert name == "Crashed" and "heartbeat" in message, message
    cloud = stack.sandbox
    cloud.clock.advance(timedelta(seconds=cloud.world.settings.link_duration_seconds))  # the service went on
    rerun = onboard([KILLED_MID_LINK], INLINE)
    name, _, message = final_state(client, rerun)
    assert name == "Completed", message
    assert link_posts(cloud, KILLED_MID_LINK) == 1
    assert cloud.world.powerplatform.environment(KILLED_MID_LINK).key_managed_by == "Customer"
    return crashed_after


def audit_is_one_chain(stack: Stack, monkeypatch: pytest.MonkeyPatch, settings: dict[str, str]) -> None:
    monkeypatch.setenv("PPCMK_AUDIT_STORAGE", settings["PPCMK_AUDIT_STORAGE"])
    entries = AuditLog(stack.shared / "audit").entries()
    assert {e["by"].get("worker") for e in entries} >= {"worker-a", "worker-b"}
    assert f"audit chain intact: {len(entries)} entries" in cli("audit", "verify")
    edited = stack.shared / "audit" / AuditLog.entry_path(3)
    entry = json.loads(edited.read_text())
    entry["event"]["edited"] = True
    edited.write_text(json.dumps(entry))
    refused = CliRunner().invoke(app, ["audit", "verify"])
    assert refused.exit_code == 1 and "entry 3: content changed" in refused.output, refused.output


@contextmanager
def phase(name: str, timings: dict[str, float]) -> Iterator[None]:
    began = time.monotonic()
    yield
    timings[name] = round(time.monotonic() - began)


def test_several_workers_share_one_truth(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    timings: dict[str, float] = {"server": stack.started_in}
    with phase("set-up", timings):
        settings = set_up(stack)
        stack.start_worker("worker-a", settings)
        stack.start_worker("worker-b", settings)
    with get_client(sync_client=True) as client:
        with phase("onboard across workers", timings):
            onboard_crosses_workers(stack, client, settings)
        stack.sandbox.reset()
        with phase("kill mid-link", timings):
            crashed, killed_at = kill_a_worker_mid_link(stack, client)
        with phase("revert vs change_policy", timings):
            revert_races_change_policy(stack, client)  # on the surviving worker, while the zombie is found
        with phase("crashed, re-run", timings):
            crashed_within = rerun_converges(stack, client, crashed, killed_at)
            timings["Crashed seen, s after the kill (at most)"] = round(crashed_within)
    with phase("audit", timings):
        audit_is_one_chain(stack, monkeypatch, settings)
    print(f"distributed test timings (s): {timings}")
