"""The demo story against the session sandbox and Prefect backend: every chapter completes, the scripted
admins answer through Prefect's resume API, and the onboarded environments end up linked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from ppcmk_cli.demo_story import NEW_POLICY, ONBOARDED, PRODUCTION, SANDBOX_ENV, UNMANAGED, StoryTeller
from ppcmk_cli.doctor import sandbox_inputs
from ppcmk_cli.profile import SandboxProfile, save_profile
from ppcmk_cli.sandbox_blocks import register_sandbox_blocks
from ppcmk_deployments.catalog import SandboxBlocks
from tests.support.scenario import LEGACY_BYOK

# Own block names: the session's `sandbox-*` blocks point at another target and other tests rely on them.
DEMO_BLOCKS = SandboxBlocks(kv_admin="demo-kv-admin", pp_admin="demo-pp-admin", pp_admin_2="demo-pp-admin-2",
                            runbook="demo-runbook", target="demo-target")


def test_the_story_links_the_onboarded_environments(cloud: Any, prefect_backend: None, ppcmk_home: Path,
                                                     tmp_path: Path) -> None:
    profile = SandboxProfile.from_endpoints(cloud.endpoints, pid=-1)
    save_profile(profile)
    blocks = register_sandbox_blocks(profile, DEMO_BLOCKS)
    console = Console(record=True, width=400)

    teller = StoryTeller(console, sandbox_inputs(), cloud.clock.now, tmp_path / "report", profile)
    result = teller.tell(blocks)

    output = console.export_text()
    assert result.ok, output
    assert "provider.registered" in output and "Legacy BYOK" in output  # the doctor's seeded problems
    assert ("scripted Power Platform admin pp-admin@contoso.example signed in at the tenant's identity "
            "provider and approved plan") in output
    assert "through Prefect's resume API with that proof" in output
    onboarded = {row["environment_id"]: row for row in result.outcomes["onboard"].rows}
    assert set(onboarded) == set(ONBOARDED)
    assert {row["link_status"] for row in onboarded.values()} == {"Linked"}
    for runbook in ("rotate", "change_policy", "revert", "migrate_byok", "report"):
        assert result.outcomes[runbook].status == "completed", runbook
    # the final report: what stayed onboarded is linked, the reverted one is back on the Microsoft key
    final = {row["environment_id"]: row for row in result.outcomes["report"].rows}
    assert final[PRODUCTION]["link_status"] == "Linked" and final[PRODUCTION]["policy"].endswith(NEW_POLICY)
    assert final[UNMANAGED]["link_status"] == "Linked"
    assert final[UNMANAGED]["policy"].endswith("ep-cmk-europe")
    assert final[LEGACY_BYOK]["link_status"] == "Linked"
    assert final[SANDBOX_ENV]["link_status"] != "Linked"
    assert "report: the CMK state of every environment" in output
    assert "#1: unlink from ep-cmk-europe" in output and "#2: link to ep-cmk-europe-v2" in output
