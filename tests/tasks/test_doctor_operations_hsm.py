"""The doctor's lifecycle-operations check (Power Platform API) and its managed HSM targets."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from ppcmk.checks import key_vault as checks
from ppcmk.checks.environments import check_operations
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.models.azure import VaultStatus
from ppcmk.models.environments import Environment, EnvironmentOperation
from ppcmk.models.findings import Finding, Severity
from ppcmk.services.factory import ClientFactory
from ppcmk_sandbox.powerplatform.lifecycle import start_operation
from ppcmk_sandbox.powerplatform.records import OperationType
from ppcmk_tasks import access
from ppcmk_tasks.doctor import doctor_report
from tests.support.arm import managed_hsm_id
from tests.support.sandbox import target
from tests.support.scenario import BUSY_SANDBOX, DEVELOPER, PRODUCTION, SANDBOX, UNMANAGED, US_PRODUCTION

OPERATIONS = r"/environmentmanagement/environments/.*/operations"
HSM_KEY = "hsm-cmk/keys/cmk-hsm"


def _about(report: Any, check: str, subject: str) -> list[Finding]:
    return [f for f in report.findings if f.check == check and f.subject.endswith(subject)]


def test_the_busy_environment_is_reported_once_per_running_operation(
    cloud: Any, conn: ConnectionSettings
) -> None:
    # A link left running on another environment: its runtime reason already says so (an error).
    system_id = cloud.world.arm.find_policy_by_name("ep-existing").system_id
    assert not ClientFactory.for_settings(conn).pp_admin().begin_link(SANDBOX, system_id).done()
    cloud.advance(timedelta(seconds=30))
    cloud.log.clear()  # the link asked for running operations first
    report = doctor_report(conn, target(cloud, key="cmk-prod", policy="ep-existing"),
                           [SANDBOX, BUSY_SANDBOX])
    (linking,) = _about(report, "env.busy", SANDBOX)
    assert linking.severity == Severity.ERROR
    (governance,) = _about(report, "env.busy", BUSY_SANDBOX)
    assert governance.severity == Severity.WARNING
    assert "UpdateGovernanceConfiguration is InProgress since 2026-12-01 09:00" in governance.message
    assert governance.fix.startswith("wait for it to finish; ppcmk waits for it before linking")
    assert cloud.log.count(method="GET", path=OPERATIONS) == 2  # one read per environment


def test_a_tenant_survey_reads_operations_only_where_managed_environment_is_the_advice(
    cloud: Any, conn: ConnectionSettings
) -> None:
    # Turning Managed Environment off on a managed environment: the environment list does not show it.
    with cloud.world.lock:
        production = cloud.world.powerplatform.environment(PRODUCTION)
        start_operation(cloud.world, production, OperationType.GOVERNANCE_OFF, 3600, None,
                        {"protection_level": "Basic"})
    cloud.advance(timedelta(minutes=5))
    cloud.log.clear()
    survey = doctor_report(conn, target(cloud, key="cmk-prod", policy="ep-existing"))
    read = {e.path.rsplit("/", 2)[-2] for e in cloud.log.entries if re.search(OPERATIONS, e.path)}
    # the Basic ones of an eligible type and geo, and the one that existed at BYOK's end of support
    assert read == {DEVELOPER, UNMANAGED, BUSY_SANDBOX, US_PRODUCTION}
    (note,) = _about(survey, "env.operations", "environments")
    assert note.severity == Severity.INFO and "read for 4 of 12 environments" in note.message
    assert "--environment" in note.message
    assert _about(survey, "env.busy", BUSY_SANDBOX) and not _about(survey, "env.busy", PRODUCTION)

    # A selection (--environment, a runbook's environments) has every named environment's operations read.
    selected = doctor_report(conn, target(cloud, key="cmk-prod", policy="ep-existing"), [PRODUCTION])
    (running,) = _about(selected, "env.busy", PRODUCTION)
    assert running.severity == Severity.WARNING
    assert "UpdateGovernanceConfiguration is InProgress" in running.message
    assert not _about(selected, "env.operations", "environments")


def test_a_refused_operations_read_is_one_info_finding_and_the_rest_still_runs(
    cloud: Any, conn: ConnectionSettings
) -> None:
    cloud.faults.add(method="GET", path=OPERATIONS, status=403)
    report = doctor_report(conn, target(cloud, key="cmk-prod", policy="ep-existing"))
    (refused,) = [f for f in report.findings if f.check == "env.operations"]
    assert refused.severity == Severity.INFO and "refused (HTTP 403)" in refused.message
    assert "Power Platform Administrator" in refused.message
    assert cloud.log.count(method="GET", path=OPERATIONS) == 1  # refused once: not asked again
    assert not _about(report, "env.busy", BUSY_SANDBOX)
    assert {"env.sku", "env.default", "env.geo", "provider.registered"} <= {f.check for f in report.errors}


def _hsm_target(cloud: Any, **overrides: Any) -> TargetSettings:
    values = {"vault_id": managed_hsm_id(cloud), "key_type": "RSA-HSM", "key_size": 3072, **overrides}
    return target(cloud, key="cmk-hsm", policy="ep-existing", **values)


def test_a_managed_hsm_key_is_read_and_checked(cloud: Any, conn: ConnectionSettings) -> None:
    report = doctor_report(conn, _hsm_target(cloud), [SANDBOX])
    assert not _about(report, "key.exists", HSM_KEY)  # found through managed_hsm_keys, not reported missing
    assert not [f for f in report.errors if f.check.startswith(("key.", "vault."))]
    (model,) = _about(report, "vault.permission_model", "managedHSMs/hsm-cmk")
    assert model.severity == Severity.INFO and "local RBAC" in model.message

    wrong_size = doctor_report(conn, _hsm_target(cloud, key_size=2048), [SANDBOX])
    (size,) = _about(wrong_size, "key.size", HSM_KEY)
    assert size.severity == Severity.ERROR and "3072 bits" in size.message
    software = doctor_report(conn, _hsm_target(cloud, key_type="RSA", key_size=3072), [SANDBOX])
    assert not _about(software, "key.type", HSM_KEY)  # an RSA-HSM key serves an RSA target


def test_a_managed_hsm_without_purge_protection_gets_the_hsm_command() -> None:
    hsm_id = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/managedHSMs/h"
    hsm = VaultStatus(vault_id=hsm_id, name="h", kind="managedHSM", vault_uri="https://h", soft_delete=True,
                      purge_protection=False, rbac_authorization=True)
    (purge,) = [f for f in checks.check_vault(hsm) if f.severity == Severity.ERROR]
    assert purge.check == "vault.purge_protection" and "az keyvault update-hsm" in purge.fix


def _operation(status: str, **overrides: Any) -> EnvironmentOperation:
    values: dict[str, Any] = {"operation_id": "op", "name": "UpdateGovernanceConfiguration", "status": status,
                              "start_time": datetime(2026, 12, 1, 9, tzinfo=UTC)}
    return EnvironmentOperation(**{**values, **overrides})


def _environment(runtime_reason: str = "NotSpecified") -> Environment:
    return Environment(id="env", display_name="E", geo="europe", sku="Sandbox", protection_level="Standard",
                       runtime_state="Enabled", runtime_reason=runtime_reason, cmk=None,
                       key_managed_by="Microsoft")


def test_only_active_operations_count() -> None:
    finished = [_operation("Succeeded"), _operation("Failed"), _operation("ValidationError"),
                _operation("NoOperation")]
    assert check_operations(_environment(), finished) == []
    active = check_operations(_environment(), [_operation("Validated", start_time=None), *finished])
    assert [(f.check, f.severity) for f in active] == [("env.busy", Severity.WARNING)]
    assert "is Validated (not started yet)" in active[0].message
    # a running link already shows in the runtime reason: check_environment reports it as an error
    busy = _environment("CustomerManagedKeyOperationInProgress")
    assert check_operations(busy, [_operation("InProgress", name="NewCustomerManagedKey")]) == []


def test_missing_hsm_key_access_is_an_error_with_the_local_role_fix_and_quiet_once_granted(
    cloud: Any, conn: ConnectionSettings
) -> None:
    tgt = _hsm_target(cloud)
    principal = cloud.world.arm.find_policy_by_name("ep-existing").principal_id
    (missing,) = [f for f in doctor_report(conn, tgt, [SANDBOX]).findings if f.check == "access.key"]
    assert missing.severity == Severity.ERROR and "hsm-cmk" in missing.message
    assert "Managed HSM Crypto Service Encryption User at scope /keys/cmk-hsm" in missing.fix
    assert (
        'az keyvault role assignment create --hsm-name hsm-cmk --role "Managed HSM Crypto Service Encryption '
        f'User" --scope /keys/cmk-hsm --assignee {principal}'
    ) in missing.fix

    access.grant_key_access.fn(conn, tgt, principal)
    (held,) = [f for f in doctor_report(conn, tgt, [SANDBOX]).findings if f.check == "access.key"]
    assert held.severity == Severity.INFO and "at /keys/cmk-hsm" in held.message


def test_a_refused_hsm_role_read_is_an_info_finding_naming_the_role(
    cloud: Any, conn: ConnectionSettings
) -> None:
    cloud.faults.add(method="GET", path=r"/providers/Microsoft\.Authorization/roleAssignments$", status=403)
    report = doctor_report(conn, _hsm_target(cloud), [SANDBOX])
    (refused,) = [f for f in report.findings if f.check == "access.key"]
    assert refused.severity == Severity.INFO and "HTTP 403" in refused.message
    assert "Managed HSM Crypto Officer" in refused.message
    assert not [f for f in report.errors if f.check.startswith("access.")]
