"""Graph lookups against the sandbox directory."""

from __future__ import annotations

import pytest

from ppcmk.errors import ConfigError
from ppcmk.services.factory import ClientFactory
from tests.support.scenario import PP_ADMIN_ID, RUNBOOK_ID


def test_user_by_upn_or_object_id(factory: ClientFactory) -> None:
    graph = factory.graph()
    by_upn = graph.user("pp-admin@contoso.example")
    assert by_upn.object_id == PP_ADMIN_ID and by_upn.kind == "User"
    assert graph.user_object_id(PP_ADMIN_ID) == PP_ADMIN_ID


def test_service_principal_by_object_id(factory: ClientFactory) -> None:
    runbook = factory.graph().service_principal(RUNBOOK_ID)
    assert runbook.kind == "ServicePrincipal" and runbook.app_id == "0b0b0004-0000-4000-8000-000000000004"


@pytest.mark.parametrize(("lookup", "value"), [
    ("user", "nobody@contoso.example"),
    ("user", "not an upn"),
    ("service_principal", "0a0a0099-0000-4000-8000-000000000099"),
    ("service_principal", "runbook"),
])
def test_unknown_principals_are_config_errors(factory: ClientFactory, lookup: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        getattr(factory.graph(), lookup)(value)
    assert caught.value.fix
