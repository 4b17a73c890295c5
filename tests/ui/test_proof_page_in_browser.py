"""A person with only a browser gets a proof: the sign-in page sends them to the sandbox authority's sign-in
(authorization code with PKCE), they sign in with their UPN and password in a real browser (Debian's
chromium driven by Playwright), and the page shows a token that ppcmk verifies as that person's proof."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ppcmk.identity.keys import TenantKeys
from ppcmk.identity.proof import Expected, verify
from ppcmk.identity.signin import SignIn
from ppcmk_cli.demo_backend import free_port
from ppcmk_cli.proof_page import ProofPage
from ppcmk_sandbox import Sandbox
from tests.support.browser import needs_a_browser
from tests.support.identity import held
from tests.support.scenario import PP_ADMIN, PP_ADMIN_ID

pytestmark = needs_a_browser
APPROVALS_APP = "0d0d0001-0000-4000-8000-000000000001"
AZURE_CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


def test_a_person_with_only_a_browser_gets_a_proof(cloud: Sandbox, browser_page: Any, tmp_path: Path) -> None:
    endpoints = cloud.endpoints
    signin = SignIn(tenant_id=endpoints.tenant_id, authority=endpoints.authority, instance_discovery=False,
                    scope="api://contoso-approvals/Approve", client_id=AZURE_CLI)
    asked = time.time() - 5
    page = ProofPage(signin, free_port(), ca_bundle=endpoints.ca)
    server = page.serve_in_background()
    try:
        person = held(cloud, "pp-admin")
        browser_page.goto(page.redirect_uri)  # the link a Resume form gives
        browser_page.fill("#i0116", person["upn"])
        browser_page.fill("#i0118", person["password"])
        browser_page.click("#idSIButton9")
        browser_page.wait_for_selector("#proof")
        browser_page.screenshot(path=str(tmp_path / "proof.png"))
        token = browser_page.input_value("#proof")
        assert browser_page.inner_text("#who") == f"Power Platform Admin ({PP_ADMIN})"
    finally:
        server.should_exit = True
    keys = TenantKeys(endpoints.authority, endpoints.tenant_id, endpoints.ca)
    proven = verify(token, Expected(endpoints.tenant_id, (APPROVALS_APP,), "Approve", asked), keys)
    assert (proven.object_id, proven.name) == (PP_ADMIN_ID, PP_ADMIN)
