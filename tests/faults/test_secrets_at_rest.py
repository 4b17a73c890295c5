"""Nothing a faulted run persists holds a token, a secret or key material.

Flows run tasks against persistent faults (reads and writes of Key Vault, ARM and the Power Platform admin
API, the hold tag's PATCH) with result persistence on, as a deployment with shared result storage has it.
Then everything persisted is scanned: the result storage folder (base64 payloads decoded), every flow and
task run state's message and data through the Prefect API, artifacts, variables, events, and the audit log,
for bearer tokens and for every secret, password and identity header of the sandbox's principals; signing in
also leaves none in the logs (azure-identity's and MSAL's included) or the sandbox's request log.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.settings import (
    PREFECT_LOCAL_STORAGE_PATH,
    PREFECT_RESULTS_PERSIST_BY_DEFAULT,
    temporary_settings,
)

from ppcmk.safety.step_errors import StepFailed
from ppcmk.services.factory import ClientFactory
from ppcmk.services.key_vault import read_key
from ppcmk_tasks.environments import link
from ppcmk_tasks.holds import hold_key_version
from ppcmk_tasks.keyvault import create_or_adopt_key, get_key_info
from ppcmk_tasks.policy import create_or_get_policy, get_policy
from tests.faults import tally
from tests.support.sandbox import connection, target
from tests.support.scenario import LINKED_POLICY_SYSTEM_ID as SYSTEM_ID
from tests.support.scenario import PRODUCTION

# a bearer header; a JWT (every sandbox and Entra token starts so) is found by its shape
SECRET_MARKERS = (b"Bearer ",)
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/=_-]{40,}")


@pytest.fixture
def markers(cloud: Any) -> tuple[bytes, ...]:
    """What must never be found: bearer headers and every proof in the sandbox's credentials file."""
    principals = json.loads(Path(cloud.endpoints.credentials).read_text())["principals"]
    proofs = {held[field] for held in principals.values()
              for field in ("client_secret", "password", "identity_header") if held.get(field)}
    return SECRET_MARKERS + tuple(proof.encode() for proof in proofs)


@pytest.fixture
def persisted(tmp_path: Path, prefect_backend: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    storage = tmp_path / "results"
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path / "home"))
    with temporary_settings({PREFECT_RESULTS_PERSIST_BY_DEFAULT: True, PREFECT_LOCAL_STORAGE_PATH: storage}):
        yield tmp_path


def _leaks(blob: bytes, markers: tuple[bytes, ...], depth: int = 0) -> list[bytes]:
    """Secret markers in `blob`, or in any base64 payload inside it (results are base64 pickles). A token is
    a base64url run starting `eyJ`; any other run is decoded and searched in turn (a marker's letters can
    occur by chance inside base64 text, so the text of a run itself is not searched)."""
    runs = BASE64_RUN.findall(blob)
    plain = BASE64_RUN.sub(b" ", blob)
    found = [marker for marker in markers if marker in plain]
    found += [b"eyJ" for run in runs if run.startswith(b"eyJ")]
    if depth < 2:
        for run in runs:
            try:
                padded = run + b"=" * (-len(run) % 4)
                decoded = base64.b64decode(padded, altchars=b"-_" if b"-" in run else None)
            except (binascii.Error, ValueError):
                continue
            found += _leaks(decoded, markers, depth + 1)
    return found


def _persisted_leaks(home: Path, flow_run_ids: list[Any],
                     markers: tuple[bytes, ...]) -> dict[str, list[bytes]]:
    leaks: dict[str, list[bytes]] = {}
    for path in home.rglob("*"):
        if path.is_file() and (found := _leaks(path.read_bytes(), markers)):
            leaks[str(path)] = found
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)))
        task_runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=flow_run_ids)))
        for run in [*runs, *task_runs]:
            for state in [run.state, *((client.read_flow_run_states(run.id)) if run in runs else [])]:
                if state is not None and (found := _leaks(state.model_dump_json().encode(), markers)):
                    leaks[f"state of {run.name}"] = found
        for artifact in client.read_artifacts():
            if found := _leaks(artifact.model_dump_json().encode(), markers):
                leaks[f"artifact {artifact.key}"] = found
        for variable in client.read_variables():
            if found := _leaks(variable.model_dump_json().encode(), markers):
                leaks[f"variable {variable.name}"] = found
        events = client.request("POST", "/events/filter", json={"limit": 50}).json()["events"]
        if found := _leaks(json.dumps(events).encode(), markers):
            leaks["events"] = found
    tally.record_secrets(sum(map(len, leaks.values())))
    return leaks


def test_faulted_runs_persist_no_token_secret_or_key_material(cloud: Any, persisted: Path,
                                                             markers: tuple[bytes, ...]) -> None:
    kv, pp = connection(cloud, "kv-admin"), connection(cloud, "pp-admin")
    new_key = target(cloud, key="cmk-faulted", policy="ep-faulted")
    existing = target(cloud, key="cmk-prod", policy="ep-existing")
    for method, path in (("GET", r"/keys/cmk-prod"), ("POST", r"/keys/cmk-faulted/create"),
                         ("PUT", r"enterprisePolicies/ep-faulted"),
                         ("GET", r"enterprisePolicies/ep-existing"),
                         ("POST", r"Encryption/link"), ("PATCH", r"/keys/cmk-prod/")):
        cloud.faults.add(method, path, status=500, times=None)

    @flow(name="faulted-steps")
    def faulted() -> None:
        states = [
            get_key_info(kv, existing, return_state=True),
            create_or_adopt_key(kv, new_key, return_state=True),
            create_or_get_policy(kv, new_key, return_state=True),
            get_policy(kv, existing, return_state=True),
            link(pp, PRODUCTION, SYSTEM_ID, return_state=True),
            hold_key_version(kv, existing.vault_id, "cmk-prod", "v1", timedelta(days=28), "test",
                             return_state=True),
        ]
        failures = [s for s in states if s.is_failed()]
        assert len(failures) == len(states), [s.name for s in states]
        failures[0].result()  # the flow fails with the first step's error, persisted too

    state = faulted(return_state=True)
    assert state.is_failed()
    assert list((persisted / "results").rglob("*")), "results were persisted"
    assert _persisted_leaks(persisted, [state.state_details.flow_run_id], markers) == {}
    with pytest.raises(StepFailed) as caught:
        state.result()
    assert caught.value.step.startswith("get-key-info-cmk-prod") and "500" in str(caught.value)
    assert "re-run" in str(caught.value)


def test_an_sdk_error_raised_in_a_flow_itself_carries_no_token(cloud: Any, persisted: Path,
                                                              markers: tuple[bytes, ...]) -> None:
    kv = connection(cloud, "kv-admin")
    existing = target(cloud, key="cmk-prod", policy="ep-existing")
    cloud.faults.add("GET", r"/keys/cmk-prod", status=500, times=None)

    @flow(name="faulted-flow-read")
    def read_in_the_flow() -> Any:
        return read_key(ClientFactory.for_settings(kv), existing.vault_id, "cmk-prod")  # no task around it

    state = read_in_the_flow(return_state=True)
    assert state.is_failed()
    with pytest.raises(HttpResponseError) as raw:
        state.result()
    response = raw.value.response
    assert response is not None and "authorization" not in {h.lower() for h in response.request.headers}
    assert _persisted_leaks(persisted, [state.state_details.flow_run_id], markers) == {}


def test_signing_in_leaves_no_secret_in_logs_the_request_log_or_events(
        cloud: Any, persisted: Path, markers: tuple[bytes, ...], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # azure-identity's, MSAL's and azure-core's request logging included
    # connections of their own, so their credentials sign in afresh here (a factory lives per connection)
    kv, pp = (connection(cloud, persona, request_timeout=59.5) for persona in ("kv-admin", "pp-admin"))
    existing = target(cloud, key="cmk-prod", policy="ep-existing")
    cloud.faults.add("POST", r"/oauth2/v2\.0/token$", status=503, times=1)  # a refused sign-in, retried

    @flow(name="signed-in-reads")
    def signed_in_reads() -> None:
        get_key_info(kv, existing)
        get_policy(kv, existing)
        ClientFactory.for_settings(pp).pp_admin().list_environments()

    state = signed_in_reads(return_state=True)
    assert state.is_completed()
    # one token per connection and API: ARM and Key Vault for the Key Vault admin, the admin API for the other
    assert cloud.log.count("POST", r"/oauth2/v2\.0/token$", status=200) == 3
    assert _leaks(caplog.text.encode(), markers) == []
    assert _leaks(json.dumps(cloud.log.to_list()).encode(), markers) == []
    assert _persisted_leaks(persisted, [state.state_details.flow_run_id], markers) == {}
