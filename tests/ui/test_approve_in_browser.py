"""The honest hand-off from a terminal: the Power Platform admin runs `ppcmk approve RUN_ID`, opens the device
code's verification page in a real browser (Debian's chromium driven by Playwright), types the code, signs in
with their own UPN and password, and the run accepts the proof and completes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ppcmk_cli.exit_codes import ExitCode
from ppcmk_sandbox import Sandbox
from tests.flows.approval_harness import run
from tests.support.approving import ppcmk_approve
from tests.support.browser import needs_a_browser
from tests.support.identity import held
from tests.support.runs import wait_for_approval
from tests.support.scenario import PP_ADMIN

pytestmark = [needs_a_browser, pytest.mark.usefixtures("prefect_backend")]


def test_the_power_platform_admin_signs_in_in_a_browser_and_the_handoff_completes(
        cloud: Sandbox, sandbox_blocks: dict[str, str], browser_page: Any, tmp_path: Path) -> None:
    person = held(cloud, "pp-admin")
    running = run(sandbox_blocks, handoff_target=sandbox_blocks["target"], timeout_s=120)
    pending = wait_for_approval(running)

    def in_the_browser(address: str, code: str) -> None:
        browser_page.goto(address)
        browser_page.fill("#otc", code)
        browser_page.click("#idSIButton9")
        browser_page.fill("#i0116", person["upn"])
        browser_page.fill("#i0118", person["password"])
        browser_page.click("#idSIButton9")
        browser_page.screenshot(path=str(tmp_path / "signed-in.png"))
        assert "You have signed in" in browser_page.inner_text("#message")

    answered = ppcmk_approve(cloud, tmp_path / "home", in_the_browser, str(pending.flow_run_id))
    assert answered.exit_code == ExitCode.OK, answered.output
    assert f"Accepted: Power Platform Admin ({PP_ADMIN}) approved" in answered.output
    # Playwright's event loop runs in this thread: the run's state, not its result read through it
    assert running.state().is_completed()
