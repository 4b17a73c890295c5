"""The Prefect API as the CLI uses it: which server, runs waiting for approval, resuming with an answer."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL, temporary_settings

from ppcmk.fleet.parking import is_parked
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.profile import served_prefect_api

NO_PREFECT_API = ("no Prefect API to use: `ppcmk serve` is not running and PREFECT_API_URL is not set; start "
                  "`ppcmk serve` (or point PREFECT_API_URL at your server, e.g. http://127.0.0.1:4200/api)")


def prefect_api_url() -> str:
    """$PREFECT_API_URL, else the API a running `ppcmk serve` published, else the active Prefect profile's.

    Without any, the CLI stops (exit 4) instead of letting Prefect start a temporary server that nobody else
    sees (it would show no runs and lock its SQLite database against the next command)."""
    url = os.environ.get("PREFECT_API_URL") or served_prefect_api() or PREFECT_API_URL.value()
    if not url:
        raise CliError(NO_PREFECT_API, ExitCode.UNAVAILABLE)
    return str(url)


@contextmanager
def using_prefect_api() -> Iterator[str]:
    """Point Prefect at the API `prefect_api_url` names, after checking that it answers."""
    url = prefect_api_url()
    with temporary_settings(updates={PREFECT_API_URL: url}):
        with get_client(sync_client=True) as client:
            problem = client.api_healthcheck()
        if problem is not None:
            raise CliError(
                f"the Prefect API at {url} does not answer ({problem.__class__.__name__}); start it with "
                "`ppcmk serve` or fix PREFECT_API_URL",
                ExitCode.UNAVAILABLE,
            ) from problem
        yield url


@contextmanager
def prefect_api() -> Iterator[SyncPrefectClient]:
    """A client for the API `prefect_api_url` names (checked to answer)."""
    with using_prefect_api(), get_client(sync_client=True) as client:
        yield client


@dataclass(frozen=True)
class WaitingRun:
    """A flow run paused or suspended at an approval, with the request text the flow stored for it."""

    run: FlowRun
    flow_name: str
    description: str
    schema: dict[str, Any]

    @property
    def waiting_since(self) -> datetime | None:
        return self.run.state.timestamp if self.run.state else None

    @property
    def summary(self) -> str:
        """The first meaningful line of the request (the plan headline)."""
        for line in self.description.splitlines():
            text = line.strip().lstrip("#").strip()
            if text:
                return text
        return "(no description)"


def _read_input(client: SyncPrefectClient, run_id: UUID, key: str | None) -> str:
    if not key:
        return ""
    try:
        return client.read_flow_run_input(run_id, key)
    except ObjectNotFound:
        return ""
    except PrefectHTTPStatusError as error:  # the sync client reports a missing input as a plain 404
        if error.response.status_code == 404:
            return ""
        raise


def _as_text(stored: str) -> str:
    """Run inputs are stored JSON-encoded; the description is a JSON string."""
    try:
        value = json.loads(stored)
    except ValueError:
        return stored
    return value if isinstance(value, str) else stored


def _runbook_name(client: SyncPrefectClient, run: FlowRun) -> str:
    """Local runs wait in an approval subflow; name the runbook that asked, not the subflow."""
    if run.parent_task_run_id:
        parent_task = client.read_task_run(run.parent_task_run_id)
        if parent_task.flow_run_id:
            run = client.read_flow_run(parent_task.flow_run_id)
    return client.read_flow(run.flow_id).name


def describe_waiting_run(client: SyncPrefectClient, run: FlowRun) -> WaitingRun:
    keyset = (run.state.state_details.run_input_keyset or {}) if run.state else {}
    description = _as_text(_read_input(client, run.id, keyset.get("description")))
    raw_schema = _read_input(client, run.id, keyset.get("schema"))
    try:
        schema = json.loads(raw_schema) if raw_schema else {}
    except ValueError:
        schema = {}
    return WaitingRun(run=run, flow_name=_runbook_name(client, run), description=description,
                      schema=schema if isinstance(schema, dict) else {})


def waiting_runs(client: SyncPrefectClient, limit: int = 200) -> list[WaitingRun]:
    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    runs = client.read_flow_runs(flow_run_filter=paused, limit=limit)
    return [describe_waiting_run(client, run) for run in runs if not is_parked(run)]


RUN_ID_PREFIX = re.compile(r"^[0-9a-f][0-9a-f-]{3,35}$")


def run_id_or_prefix(text: str, option: str = "RUN_ID") -> str:
    """A flow run id or its first characters (at least four, as `ppcmk approvals` shows eight),
    lower-case."""
    cleaned = text.strip().lower()
    if not RUN_ID_PREFIX.match(cleaned):
        raise CliError(f"{option}: {text!r} is not a flow run id or its first characters (at least 4); "
                       "`ppcmk approvals` lists the waiting runs", ExitCode.USAGE)
    return cleaned


def one_run(prefix: str, run_ids: list[str], option: str, what: str) -> str:
    """The one id of `run_ids` that starts with `prefix`; none or several is a usage error naming
    them."""
    matching = sorted({run_id for run_id in run_ids if run_id.startswith(prefix)})
    if not matching:
        raise CliError(f"{option} {prefix}: no {what} starts with it", ExitCode.USAGE)
    if len(matching) > 1:
        raise CliError(f"{option} {prefix}: {len(matching)} {what}s start with it "
                       f"({', '.join(matching)}); give more characters", ExitCode.USAGE)
    return matching[0]


def read_waiting_run(client: SyncPrefectClient, run_id: str) -> WaitingRun:
    """The run `run_id` (or the one waiting run whose id starts with it), checked to wait at an
    approval."""
    wanted = run_id_or_prefix(run_id)
    try:
        parsed = UUID(wanted)
    except ValueError:
        waiting = [str(w.run.id) for w in waiting_runs(client)]
        parsed = UUID(one_run(wanted, waiting, "RUN_ID", "run waiting for approval"))
    try:
        run = client.read_flow_run(parsed)
    except ObjectNotFound as error:
        raise CliError(f"RUN_ID: no flow run {run_id} on {client.api_url}", ExitCode.USAGE) from error
    if not run.state or not run.state.is_paused():
        state = run.state.name if run.state else "unknown"
        raise CliError(f"flow run {parsed} is not waiting for approval (it is {state})",
                       ExitCode.BLOCKED)
    if is_parked(run):
        raise CliError(f"flow run {parsed} is parked while its environments' operations run, not "
                       "waiting for approval; `ppcmk runs wake` resumes it", ExitCode.BLOCKED)
    return describe_waiting_run(client, run)


def resume_with_input(client: SyncPrefectClient, run_id: UUID, run_input: dict[str, Any]) -> None:
    """Resume a waiting run; Prefect answers 200 even when it refuses, so the status is checked here."""
    result = client.resume_flow_run(run_id, run_input=run_input)
    if result.status != SetStateStatus.ACCEPT:
        reason = getattr(result.details, "reason", None) or result.status.value
        raise CliError(f"Prefect did not resume run {run_id}: {reason}", ExitCode.BLOCKED)
