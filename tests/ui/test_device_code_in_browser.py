"""A person signs in with a device code in a real browser (Debian's chromium driven by Playwright): azure-
identity's DeviceCodeCredential shows the code, the person opens the sandbox authority's verification page,
types the code, signs in with their UPN and password, and the token the credential gets carries that person's
object id, UPN and directory roles. A screenshot of each page is kept in the test's temporary directory."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ppcmk_sandbox import Sandbox
from tests.support.browser import needs_a_browser
from tests.support.identity import claims, device_code_credential, held
from tests.support.scenario import PP_ADMIN, PP_ADMIN_ID

pytestmark = needs_a_browser
POWER_PLATFORM_ADMIN = "11648597-926c-4cf3-9c36-bcebb0ba8dcc"


def test_a_person_signs_in_with_a_device_code_at_the_verification_page(cloud: Sandbox, browser_page: Any,
                                                                      tmp_path: Path) -> None:
    person = held(cloud, "pp-admin")
    shown: list[str] = []

    def sign_in_in_the_browser(verification_uri: str, user_code: str, expires_on: datetime) -> None:
        page = browser_page
        page.goto(verification_uri)
        page.fill("#otc", user_code)
        page.screenshot(path=str(tmp_path / "1-code.png"))
        page.click("#idSIButton9")
        page.fill("#i0116", person["upn"])
        page.fill("#i0118", person["password"])
        page.screenshot(path=str(tmp_path / "2-sign-in.png"))
        page.click("#idSIButton9")
        shown.append(page.inner_text("#message"))
        page.screenshot(path=str(tmp_path / "3-signed-in.png"))

    token = device_code_credential(cloud, sign_in_in_the_browser).get_token(
        "https://management.azure.com/.default").token
    assert "You have signed in to the Microsoft Azure CLI application" in shown[0]
    signed = claims(token)
    assert (signed["oid"], signed["upn"]) == (PP_ADMIN_ID, PP_ADMIN)
    assert POWER_PLATFORM_ADMIN in signed["wids"]
    assert cloud.authority.signed_claims(token) == signed  # signed by the sandbox authority's key
