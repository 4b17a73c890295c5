"""The Graph slice: a user's UPN to object id, service principals by id and by appId."""

from __future__ import annotations

from ppcmk_sandbox import Sandbox
from tests.support.sdk_clients import http

GRAPH = "https://graph.microsoft.com"


def test_user_by_upn_and_by_object_id(cloud: Sandbox) -> None:
    with http(cloud, "runbook", audience=GRAPH) as graph:
        by_upn = graph.get("/v1.0/users/pp-admin@contoso.example").json()
        by_id = graph.get(f"/v1.0/users/{by_upn['id']}").json()
    assert by_upn["id"] == cloud.world.identities.require("pp-admin").object_id
    assert by_id["userPrincipalName"] == "pp-admin@contoso.example"
    assert by_id["displayName"] == "Power Platform Admin"


def test_unknown_user_and_service_principal_as_user_are_404(cloud: Sandbox) -> None:
    runbook = cloud.world.identities.require("runbook")
    with http(cloud, "runbook", audience=GRAPH) as graph:
        for key in ("nobody@contoso.example", runbook.object_id):
            response = graph.get(f"/v1.0/users/{key}")
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "Request_ResourceNotFound"


def test_service_principals_by_id_and_app_id_filter(cloud: Sandbox) -> None:
    # the system-assigned identity the scenario's enterprise policy received when it was created
    principal_id = cloud.world.arm.find_policy_by_name("ep-existing").principal_id
    policy_identity = cloud.world.identities.require(principal_id)
    with http(cloud, "runbook", audience=GRAPH) as graph:
        by_id = graph.get(f"/v1.0/servicePrincipals/{policy_identity.object_id}").json()
        assert by_id["servicePrincipalType"] == "ManagedIdentity"
        found = graph.get(
            "/v1.0/servicePrincipals", params={"$filter": f"appId eq '{policy_identity.app_id}'"}
        ).json()["value"]
        assert [sp["id"] for sp in found] == [policy_identity.object_id]
        unsupported = graph.get("/v1.0/servicePrincipals", params={"$filter": "startswith(displayName,'x')"})
        assert unsupported.status_code == 400


def test_graph_needs_a_graph_token(cloud: Sandbox) -> None:
    with http(cloud, "runbook") as arm_token:
        response = arm_token.get("/v1.0/users/pp-admin@contoso.example")
    assert response.status_code == 401
