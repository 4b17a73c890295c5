"""ARM ids, geos and the known-error catalogue."""

from __future__ import annotations

import pytest

from ppcmk.errors import ServiceError, TransientError, TransientServiceError, service_error
from ppcmk.models.arm_ids import (
    VAULT_TYPE,
    parse_resource_id,
    policy_id,
    role_assignment_name,
    same_id,
    vault_id,
)
from ppcmk.models.geo import GEOS, canonical_geo, same_geo

SUB = "00000000-0000-0000-0000-000000000000"


def test_parse_and_format_round_trip() -> None:
    vid = vault_id(SUB, "rg", "kv")
    rid = parse_resource_id(vid.upper().replace("SUBSCRIPTIONS", "subscriptions"), VAULT_TYPE)
    assert rid.name == "KV" and rid.resource_group == "RG"
    assert same_id(str(rid), vid)
    with pytest.raises(ValueError, match=r"Microsoft\.KeyVault/vaults"):
        parse_resource_id(policy_id(SUB, "rg", "p"), VAULT_TYPE)
    with pytest.raises(ValueError, match="well-formed"):
        parse_resource_id("/subscriptions/x/resourceGroups/rg")


def test_same_id_ignores_case_and_trailing_slash() -> None:
    assert same_id(policy_id(SUB, "RG", "Pol") + "/", policy_id(SUB, "rg", "pol"))
    assert not same_id(policy_id(SUB, "rg", "a"), policy_id(SUB, "rg", "b"))
    assert not same_id(None, policy_id(SUB, "rg", "a"))


def test_role_assignment_name_is_deterministic() -> None:
    scope = vault_id(SUB, "rg", "kv")
    role = (f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
            "e147488a-f6f5-4113-8e2d-b22465e65bf6")
    first = role_assignment_name(scope, "AAAA", role)
    assert first == role_assignment_name(scope.upper(), "aaaa", "e147488a-f6f5-4113-8e2d-b22465e65bf6")
    assert first != role_assignment_name(scope, "bbbb", role)
    assert len(first) == 36


def test_geos_and_aliases() -> None:
    assert len(GEOS) == 18
    assert canonical_geo("UnitedStatesEUAP") == "unitedstates"
    assert same_geo("unitedkingdom", "uk") and same_geo("unitedstates", "unitedstateseuap")
    assert not same_geo("europe", "france")
    assert not same_geo(None, "europe")


def test_known_errors_carry_hints() -> None:
    not_found = service_error(404, "EnvironmentNotFound", "The environment 'x' could not be found.",
                              correlation_id="corr-1")
    assert "Power Platform Administrator" in (not_found.hint or "")
    assert "corr-1" in str(not_found)
    wrong_route = service_error(404, "NotFound", "no route",
                                path="/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/e/"
                                     "enterprisePolicies/Encryption/link")
    assert "scopes/admin" in (wrong_route.hint or "")
    busy = service_error(409, None, "operation cannot be performed because there is an active lifecycle "
                                    "operation on the environment 'e'.")
    assert "wait" in (busy.hint or "")
    unregistered = service_error(409, "MissingSubscriptionRegistration", "x")
    assert "Microsoft.PowerPlatform" in (unregistered.hint or "")
    assert "propagate" in (service_error(403, "ForbiddenByRbac", "x").hint or "")
    assert "body" in (service_error(400, "InputValidationError", "request body is null").hint or "")
    assert service_error(400, "SomethingElse", "x").hint is None


def test_transient_statuses_are_transient_errors() -> None:
    assert isinstance(service_error(429, "TooManyRequests", "slow down"), TransientServiceError)
    assert isinstance(service_error(503, None, "busy"), TransientError)
    refused = service_error(400, "BadRequest", "no")
    assert isinstance(refused, ServiceError) and not isinstance(refused, TransientError)
