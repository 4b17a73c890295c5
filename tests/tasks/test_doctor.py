"""The doctor: every seeded problem of the default scenario in one run, and each check on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ppcmk.checks import key_vault as checks
from ppcmk.checks import policy as policy_checks
from ppcmk.checks.environments import check_environment
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.models.azure import KeyInfo, PolicyInfo, RotationPolicyInfo, VaultStatus
from ppcmk.models.environments import CmkLink, Environment
from ppcmk.models.findings import Severity
from ppcmk_tasks.doctor import doctor_report, run_doctor
from ppcmk_tasks.environments import OperationWait, link
from ppcmk_tasks.policy import get_policy
from tests.support.arm import vault_id
from tests.support.runs import run_in_flow
from tests.support.sandbox import connection, target
from tests.support.scenario import (
    DEFAULT_ENVIRONMENT,
    FINANCE,
    LEGACY_BYOK,
    PP_ADMIN,
    PRODUCTION,
    SANDBOX,
    TEAMS,
    TRIAL,
    UK_SANDBOX,
    UNMANAGED,
    US_PRODUCTION,
)

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _targets(cloud: Any) -> list[Any]:
    return [
        target(cloud, vault="kv-nopurge", key="cmk-expiring", key_size=2048, policy="ep-existing"),
        target(cloud, vault="kv-nopurge", key="legacy-ec", key_size=2048, policy="ep-existing"),
        target(
            cloud,
            vault="kv-private",
            key="cmk-private",
            key_type="RSA-HSM",
            key_size=2048,
            policy="ep-existing",
        ),
    ]


def test_doctor_reports_every_seeded_problem_in_one_run(
    cloud: Any, conn: ConnectionSettings, prefect_backend: None
) -> None:
    existing = target(cloud, key="cmk-prod", policy="ep-existing")
    policy_id = existing.policy_id(conn.subscription_id)
    # A link left running makes one environment busy (runtime disabled while the operation runs).
    system_id = get_policy.fn(conn, existing).system_id  # type: ignore[union-attr]
    started = link.fn(conn, SANDBOX, system_id, wait=OperationWait(deadline=timedelta(minutes=5)))
    assert started.status == "StillRunning"
    report = run_in_flow(run_doctor, conn, _targets(cloud), None, "pp-admin-2@contoso.example")
    found = {(f.check, f.subject) for f in report.findings if f.severity != Severity.INFO}
    expected = {
        ("vault.purge_protection", vault_id(cloud, "kv-nopurge")),
        ("vault.network", vault_id(cloud, "kv-private")),
        ("key.expiry", "kv-nopurge/keys/cmk-expiring"),
        ("key.type", "kv-nopurge/keys/legacy-ec"),
        ("key.operations", "kv-nopurge/keys/legacy-ec"),
        ("provider.registered", "provider Microsoft.PowerPlatform"),
        ("access.key", policy_id),  # the policy identity has no access to kv-nopurge / kv-private
        ("access.admin_reader", policy_id),
        ("env.busy", SANDBOX),
        ("env.sku", TRIAL),  # Trial
        ("env.sku", TEAMS),  # Teams
        ("env.managed", TEAMS),
        ("env.default", DEFAULT_ENVIRONMENT),
        ("env.managed", UNMANAGED),
        ("env.geo", US_PRODUCTION),  # unitedstates
        ("env.geo", UK_SANDBOX),  # unitedkingdom
        ("env.byok", LEGACY_BYOK),
    }
    assert expected <= found, expected - found
    assert not report.ok
    encryption = {f.subject: f.message for f in report.findings if f.check == "env.encryption"}
    assert encryption[FINANCE] == "already encrypted with the target policy"


def test_the_compliant_target_has_no_errors(cloud: Any, conn: ConnectionSettings) -> None:
    existing = target(cloud, key="cmk-prod", policy="ep-existing")
    report = doctor_report(conn, existing, [PRODUCTION, FINANCE], PP_ADMIN)
    assert [f.check for f in report.errors] == ["provider.registered"]
    assert ("access.key", existing.policy_id(conn.subscription_id)) in {
        (f.check, f.subject) for f in report.findings
    }


def test_unreadable_objects_become_findings_not_crashes(cloud: Any) -> None:
    outsider = connection(cloud, "outsider")
    report = doctor_report(outsider, target(cloud, key="cmk-prod", policy="ep-existing"), [PRODUCTION])
    assert {f.check for f in report.errors} == {
        "provider.read",
        "vault.read",
        "key.read",
        "policy.read",
        "env.visible",
    }
    assert all("AuthorizationFailed" in f.message for f in report.errors if f.check.endswith(".read"))
    assert all(f.fix for f in report.errors)


# ------------------------------------------------------------------------------------ the checks themselves


def _vault(**overrides: Any) -> VaultStatus:
    values: dict[str, Any] = {
        "vault_id": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
        "name": "kv",
        "vault_uri": "https://kv",
        "soft_delete": True,
        "purge_protection": True,
        "rbac_authorization": True,
    }
    return VaultStatus(**{**values, **overrides})


def test_vault_network_with_the_trusted_services_bypass_is_fine() -> None:
    closed = _vault(public_network_access="Disabled", default_action="Deny", bypass="AzureServices")
    assert [f.severity for f in checks.check_vault(closed) if f.check == "vault.network"] == [Severity.INFO]
    no_bypass = _vault(default_action="Deny", bypass="None", soft_delete=False)
    assert {f.check for f in checks.check_vault(no_bypass) if f.severity == Severity.ERROR} == {
        "vault.network",
        "vault.soft_delete",
    }


def test_key_lifecycle_checks(cloud: Any) -> None:
    tgt = target(cloud, key="k", key_type="RSA-HSM", key_size=4096)
    key = KeyInfo(
        vault_id=tgt.vault_id,
        name="k",
        kid="https://kv/keys/k/1",
        version="1",
        kty="RSA-HSM",
        size=4096,
        key_ops=["wrapKey", "unwrapKey"],
        enabled=False,
        not_before=NOW + timedelta(days=1),
        expires_on=NOW - timedelta(days=1),
    )
    found = {f.check: f.severity for f in checks.check_key(key, tgt, NOW)}
    assert found == {
        "key.size": Severity.WARNING,
        "key.enabled": Severity.ERROR,
        "key.not_before": Severity.ERROR,
        "key.expiry": Severity.ERROR,
    }
    assert checks.check_key(None, tgt, NOW)[0].severity == Severity.INFO
    smaller = key.model_copy(update={"size": 2048, "enabled": True, "not_before": None, "expires_on": None})
    assert [(f.check, f.severity) for f in checks.check_key(smaller, tgt, NOW)] == [
        ("key.size", Severity.ERROR)
    ]


def test_rotation_expiry_must_outlive_rotation_by_28_days(cloud: Any) -> None:
    tgt = target(cloud)
    tight = RotationPolicyInfo(rotate_after_create=timedelta(days=90), expires_after=timedelta(days=100))
    assert [f.check for f in checks.check_rotation(tight, tgt)] == ["rotation.expiry"]
    fine = RotationPolicyInfo(rotate_after_create=timedelta(days=90), expires_after=timedelta(days=118))
    assert checks.check_rotation(fine, tgt) == []


def test_policy_checks_flag_pinned_versions_and_a_missing_identity(cloud: Any) -> None:
    tgt = target(cloud, key="cmk-prod")
    pinned = PolicyInfo(
        policy_id="p",
        name="ep-test",
        location="europe",
        kind="Encryption",
        identity_type="SystemAssigned",
        key_vault_id=tgt.vault_id.upper(),
        key_name="CMK-PROD",
        key_version="abc",
        health_status="Unhealthy",
    )
    assert {f.check for f in policy_checks.check_policy(pinned, tgt)} == {
        "policy.pinned_version",
        "policy.principalid",
        "policy.systemid",
        "policy.health",
    }


def _env(**overrides: Any) -> Environment:
    values: dict[str, Any] = {
        "id": "env",
        "display_name": "E",
        "geo": "europe",
        "sku": "Production",
        "protection_level": "Standard",
        "runtime_state": "Enabled",
        "runtime_reason": "NotSpecified",
        "cmk": None,
        "key_managed_by": "Microsoft",
    }
    return Environment(**{**values, **overrides})


def test_environment_state_checks(cloud: Any) -> None:
    tgt = target(cloud, key="cmk-prod")
    ours = PolicyInfo(
        policy_id="/p/ours", name="ours", location="europe", kind="Encryption", system_id="/s/ours"
    )
    other = CmkLink(policy_id="/p/other", system_id="/s/other", link_status="Linked")
    swapped = check_environment("env", _env(cmk=other), tgt, ours)
    assert [(f.check, f.severity) for f in swapped] == [("env.encryption", Severity.WARNING)]
    locked = check_environment(
        "env", _env(runtime_state="Disabled", runtime_reason="CustomerManagedKeyLocked"), tgt, ours
    )
    assert "env.locked" in {f.check for f in locked}
    assert check_environment("gone", None, tgt, ours)[0].check == "env.visible"
    assert (
        check_environment("env", _env(geo="unitedstateseuap"), target(cloud, geo="unitedstates"), ours)[
            0
        ].check
        == "env.encryption"
    )
