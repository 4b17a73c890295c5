"""The bad-input catalogue: each case is refused with an error naming the field, and nothing was written.

"Written" is any request the sandbox logged other than a read (GET/HEAD), a token request or the sandbox's
own admin routes, so a refusal that came after a write (even a refused one) fails its case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import BlockDocumentUpdate

from ppcmk.fleet.selection import FleetSelector
from ppcmk.models import arm_ids
from ppcmk_blocks import CmkConnection, CmkTarget
from ppcmk_cli.sandbox_blocks import service_credential
from ppcmk_flows.change_policy import change_policy
from ppcmk_flows.cleanup import cleanup
from ppcmk_flows.lock import lock
from ppcmk_flows.migrate_byok import migrate_byok
from ppcmk_flows.onboard import onboard
from ppcmk_flows.revert import revert
from ppcmk_flows.rotate import rotate
from ppcmk_flows.unlock import unlock
from ppcmk_sandbox.identity.credentials import CREDENTIALS_FILE
from tests.support import scenario
from tests.support.sandbox import changes_the_cloud
from tests.support.scenario import PP_ADMIN, PRODUCTION, REQUESTER, UNKNOWN_ENVIRONMENT

TENANT = "11111111-2222-4333-8444-555555555555"
SUB = "00000000-0000-0000-0000-000000000000"
VAULT = arm_ids.vault_id(SUB, scenario.RESOURCE_GROUP, scenario.VAULT)
GOOD_TARGET = dict(vault_id=VAULT, key_name=scenario.KEY, key_type="RSA", key_size=scenario.KEY_SIZE,
                   policy_name=scenario.LINKED_POLICY, resource_group=scenario.RESOURCE_GROUP,
                   geo=scenario.GEO)


@dataclass(frozen=True)
class Case:
    name: str
    field: str
    run: Callable[[dict[str, str]], Any]


def writes(cloud: Any) -> list[str]:
    return [f"{e.method} {e.path}" for e in cloud.log.entries if changes_the_cloud(e.method, e.path)]


def _rotate(**overrides: Any) -> Callable[[dict[str, str]], Any]:
    return lambda blocks: rotate(connection=blocks["kv-admin"], target=blocks["target"], requester=REQUESTER,
                                 **overrides)


def _two(flow_fn: Any, **overrides: Any) -> Callable[[dict[str, str]], Any]:
    return lambda blocks: flow_fn(kv_connection=blocks["kv-admin"], pp_connection=blocks["pp-admin"],
                                  target=blocks["target"], requester=REQUESTER, approval_poll_s=1,
                                  **overrides)


OTHER_SUBSCRIPTION = "99999999-0000-4000-8000-000000000099"


def _onboard(**overrides: Any) -> Callable[[dict[str, str]], Any]:
    def run(blocks: dict[str, str]) -> Any:
        values: dict[str, Any] = dict(kv_connection=blocks["kv-admin"], pp_connection=blocks["pp-admin"],
                                      target=blocks["target"], pp_admin=PP_ADMIN, requester=REQUESTER,
                                      selector=FleetSelector(environment_ids=[PRODUCTION]), approval_poll_s=1)
        if "target" in overrides:
            overrides["target"](blocks)
            values["target"] = "catalogue-target"
        return onboard(**{**values, **{k: v for k, v in overrides.items() if k != "target"}})

    return run


def _change_policy(**overrides: Any) -> Callable[[dict[str, str]], Any]:
    return lambda blocks: change_policy(
        kv_connection=blocks["kv-admin"], pp_connection=blocks["pp-admin"], target=blocks["target"],
        new_policy_name="ep-new", new_key_name="cmk-new", pp_admin=PP_ADMIN, requester=REQUESTER,
        approval_poll_s=1, **overrides)


def _migrate(**overrides: Any) -> Callable[[dict[str, str]], Any]:
    return lambda blocks: migrate_byok(
        kv_connection=blocks["kv-admin"], pp_connection=blocks["pp-admin"], target=blocks["target"],
        pp_admin=PP_ADMIN, requester=REQUESTER, approval_poll_s=1, **overrides)


def _onboard_reading_with_an_outsider(blocks: dict[str, str]) -> Any:
    admin = CmkConnection.load(blocks["pp-admin"])
    assert admin.ca_bundle is not None
    outsider = service_credential(Path(admin.ca_bundle).with_name(CREDENTIALS_FILE), "outsider")
    CmkConnection(cloud="sandbox", tenant_id=admin.tenant_id, subscription_id=admin.subscription_id,
                  sandbox_url=admin.sandbox_url, ca_bundle=admin.ca_bundle, time_mode="virtual",
                  **outsider).save("catalogue-outsider", overwrite=True)
    return _onboard(pp_connection="catalogue-outsider")(blocks)


def _target_in_another_subscription(_: dict[str, str]) -> Any:
    vault = VAULT.replace(SUB, OTHER_SUBSCRIPTION)
    return CmkTarget(**{**GOOD_TARGET, "vault_id": vault}).save("catalogue-target", overwrite=True)


def _revert(**overrides: Any) -> Callable[[dict[str, str]], Any]:
    return lambda blocks: revert(connection=blocks["pp-admin"], target=blocks["target"], requester=REQUESTER,
                                 approval_poll_s=1, **overrides)


def _cleanup(**overrides: Any) -> Callable[[dict[str, str]], Any]:
    return lambda blocks: cleanup(kv_connection=blocks["kv-admin"], target=blocks["target"],
                                  requester=REQUESTER, approval_poll_s=1, **overrides)


def _save_target(**overrides: Any) -> Callable[[dict[str, str]], Any]:
    return lambda _: CmkTarget(**{**GOOD_TARGET, **overrides}).save("catalogue-target", overwrite=True)


def _save_connection(**overrides: Any) -> Callable[[dict[str, str]], Any]:
    values = {"cloud": "public", "tenant_id": TENANT, "subscription_id": SUB, **overrides}
    return lambda _: CmkConnection(**values).save("catalogue-connection", overwrite=True)


def _stored_then_loaded(block: type[CmkTarget] | type[CmkConnection], good: dict[str, Any],
                        **stored: Any) -> Callable[[dict[str, str]], Any]:
    """A block whose document was changed through the API (no client-side validation), then loaded."""

    def run(_: dict[str, str]) -> Any:
        name = f"catalogue-api-{block.__name__.lower()}"
        document_id = block(**good).save(name, overwrite=True)
        with get_client(sync_client=True) as client:
            client.update_block_document(document_id, BlockDocumentUpdate(data={**good, **stored}))
        return block.load(name)

    return run


def _rotate_on_a_key_of_another_size(blocks: dict[str, str]) -> Any:
    CmkTarget(**{**GOOD_TARGET, "key_size": 2048}).save("catalogue-2048", overwrite=True)
    return rotate(connection=blocks["kv-admin"], target="catalogue-2048", requester=REQUESTER,
                  set_policy=True)


GOOD_CONNECTION = dict(cloud="public", tenant_id=TENANT, subscription_id=SUB)
CASES = [
    # rotate
    Case("rotate min_interval_hours 0", "min_interval_hours", _rotate(min_interval_hours=0)),
    Case("rotate min_interval_hours -1", "min_interval_hours", _rotate(min_interval_hours=-1)),
    Case("rotate rotate_after_days 0", "rotate_after_days", _rotate(set_policy=True, rotate_after_days=0)),
    Case("rotate expire before retention", "expire_after_days",
         _rotate(set_policy=True, rotate_after_days=90, expire_after_days=100)),
    Case("rotate notice outside lifetime", "notify_before_days",
         _rotate(set_policy=True, expire_after_days=365, notify_before_days=400)),
    Case("rotate negative notice", "notify_before_days", _rotate(set_policy=True, notify_before_days=-1)),
    Case("rotate set_policy on a key of another size", "key_size", _rotate_on_a_key_of_another_size),
    # lock, unlock
    Case("lock approval_timeout_s -1", "approval_timeout_s", _two(lock, approval_timeout_s=-1)),
    Case("lock approval_timeout_s 0", "approval_timeout_s", _two(lock, approval_timeout_s=0)),
    Case("lock approval_poll_s -1", "approval_poll_s",
         lambda b: lock(kv_connection=b["kv-admin"], pp_connection=b["pp-admin"], target=b["target"],
                        requester=REQUESTER, approval_poll_s=-1)),
    Case("unlock approval_timeout_s -1", "approval_timeout_s", _two(unlock, approval_timeout_s=-1)),
    Case("unlock reenable_deadline_minutes 0", "reenable_deadline_minutes",
         _two(unlock, reenable_deadline_minutes=0)),
    Case("unlock reenable_deadline_minutes -5", "reenable_deadline_minutes",
         _two(unlock, reenable_deadline_minutes=-5)),
    # revert, cleanup
    Case("revert operation_deadline_hours -1", "operation_deadline_hours",
         _revert(operation_deadline_hours=-1)),
    Case("revert operation_deadline_hours 0", "operation_deadline_hours",
         _revert(operation_deadline_hours=0)),
    Case("revert approval_timeout_s 0", "approval_timeout_s", _revert(approval_timeout_s=0)),
    Case("cleanup approval_timeout_s -5", "approval_timeout_s", _cleanup(approval_timeout_s=-5)),
    Case("cleanup old_policy without pp_connection", "pp_connection", _cleanup(old_policy="ep-old")),
    # onboard, change_policy, migrate_byok (the two-half runbooks)
    Case("onboard pp_admin unknown", "pp_admin", _onboard(pp_admin="nobody@contoso.example")),
    Case("onboard pp_admin is the requester", "pp_admin", _onboard(pp_admin=REQUESTER)),
    Case("onboard vault in another subscription", "vault_id",
         _onboard(target=_target_in_another_subscription)),
    Case("onboard selector selects nothing", "selector",
         _onboard(selector=FleetSelector(name_pattern="no such environment*"))),
    Case("onboard selector names an unknown id", "selector",
         _onboard(selector=FleetSelector(environment_ids=[UNKNOWN_ENVIRONMENT]))),
    Case("onboard operation_deadline_days 0", "operation_deadline_days", _onboard(operation_deadline_days=0)),
    Case("onboard max_link_attempts 0", "max_link_attempts", _onboard(max_link_attempts=0)),
    Case("onboard approval_timeout_s -1", "approval_timeout_s", _onboard(approval_timeout_s=-1)),
    Case("change_policy pp_admin unknown", "pp_admin", _change_policy(pp_admin="nobody@contoso.example")),
    Case("change_policy new vault in another subscription", "vault_id", _change_policy(
        new_vault_id=VAULT.replace(SUB, OTHER_SUBSCRIPTION))),
    Case("change_policy pp_admin is the requester", "pp_admin", _change_policy(pp_admin=REQUESTER)),
    Case("migrate_byok selector selects nothing", "selector",
         _migrate(selector=FleetSelector(name_pattern="no such environment*"))),
    Case("migrate_byok approval_timeout_s 0", "approval_timeout_s", _migrate(approval_timeout_s=0)),
    Case("onboard reading environments with an outsider's connection", "Power Platform Administrator",
         _onboard_reading_with_an_outsider),
    # blocks, on save
    Case("target key_size 1234 saved", "key_size", _save_target(key_size=1234)),
    Case("target RSA key_size 4096 saved", "key_size", _save_target(key_size=4096)),
    Case("target geo mars saved", "geo", _save_target(geo="mars")),
    Case("target vault_id not an ARM id saved", "vault_id", _save_target(vault_id=scenario.VAULT)),
    Case("target vault_id of a storage account saved", "vault_id", _save_target(
        vault_id=f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa")),
    Case("target key_name with a space saved", "key_name", _save_target(key_name="cmk prod")),
    Case("target policy_name with a slash saved", "policy_name", _save_target(policy_name="ep/one")),
    Case("target resource_group ending in a dot saved", "resource_group", _save_target(resource_group="rg.")),
    Case("connection tenant_id not a GUID saved", "tenant_id", _save_connection(tenant_id="contoso")),
    Case("connection client_secret mode without a secret saved", "client", _save_connection(
        credential_mode="client_secret", client_id=TENANT)),
    Case("connection sandbox_url over http saved", "sandbox_url", lambda _: CmkConnection(
        cloud="sandbox", tenant_id=TENANT, subscription_id=SUB, sandbox_url="http://127.0.0.1:1",
        ca_bundle="/etc/hostname").save("catalogue-connection", overwrite=True)),
    Case("connection ca_bundle missing saved", "ca_bundle", lambda _: CmkConnection(
        cloud="sandbox", tenant_id=TENANT, subscription_id=SUB, sandbox_url="https://127.0.0.1:1",
        ca_bundle="/nonexistent/ca.pem").save("catalogue-connection", overwrite=True)),
    # blocks written through the API, on load
    Case("target key_type EC stored through the API", "key_type",
         _stored_then_loaded(CmkTarget, GOOD_TARGET, key_type="EC")),
    Case("target key_size 1000 stored through the API", "key_size",
         _stored_then_loaded(CmkTarget, GOOD_TARGET, key_size=1000)),
    Case("target geo stored through the API", "geo", _stored_then_loaded(CmkTarget, GOOD_TARGET, geo="mars")),
    Case("connection request_timeout -1 stored through the API", "request_timeout",
         _stored_then_loaded(CmkConnection, GOOD_CONNECTION, request_timeout=-1)),
    Case("connection subscription_id stored through the API", "subscription_id",
         _stored_then_loaded(CmkConnection, GOOD_CONNECTION, subscription_id="sub-1")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_naming_the_field_before_any_write(
    case: Case, cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    with pytest.raises(Exception) as caught:
        case.run(sandbox_blocks)
    message = str(caught.value)
    assert case.field in message, message
    assert "Traceback" not in message
    assert writes(cloud) == []


def test_the_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 30
