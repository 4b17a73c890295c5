"""Plans: a stable hash over what changes, error findings stop the run, artifact keys are valid."""

from __future__ import annotations

import pytest

from ppcmk.models.findings import error, info, warning
from ppcmk.safety.plan import OutageWindow, Plan, PlanHasErrors, PlanItem, artifact_key


def _plan(**overrides: object) -> Plan:
    base = Plan(
        procedure="change_policy",
        requester="kv-admin@contoso.com",
        target_summary="2 environments → policy cmk-new",
        items=[PlanItem(target="env-1", kind="environment", action="unlink, then link to cmk-new")],
        outages=[
            OutageWindow(environment_id="env-1", sequence=1, cause="unlink from cmk-old"),
            OutageWindow(environment_id="env-1", sequence=2, cause="link to cmk-new"),
        ],
    )
    return base.model_copy(update=overrides)


def test_hash_is_stable_and_tracks_world_relevant_content_only() -> None:
    assert _plan().hash == _plan().hash
    assert _plan(requester="someone-else").hash == _plan().hash
    with_info = _plan(findings=[info("vault.soft_delete", "kv", "soft delete on")])
    assert with_info.hash == _plan().hash
    changed = _plan(items=[PlanItem(target="env-2", kind="environment", action="link")])
    assert changed.hash != _plan().hash
    assert _plan(findings=[warning("key.expiry", "cmk", "expires soon", "rotate")]).hash != _plan().hash


def test_error_findings_stop_with_every_error_listed() -> None:
    plan = _plan(findings=[
        error("vault.purge_protection", "kv-a", "purge protection is off", "enable purge protection"),
        error("key.size", "cmk", "RSA 1024 is not supported", "create an RSA 2048 or 3072 key"),
        warning("key.expiry", "cmk", "expires in 20 days", "rotate"),
    ])
    with pytest.raises(PlanHasErrors) as raised:
        plan.raise_for_errors()
    text = str(raised.value)
    assert "2 error(s)" in text and "purge protection is off" in text and "RSA 1024" in text
    assert "expires in 20 days" not in text
    _plan().raise_for_errors()


def test_rendering_shows_two_outage_windows_and_the_hash() -> None:
    plan = _plan()
    (row,) = plan.table_rows()
    assert row["outage windows"] == "#1: unlink from cmk-old; #2: link to cmk-new"
    markdown = plan.summary_markdown()
    assert plan.hash in markdown and "**Outage windows:** 2 across 1 environment(s)" in markdown


def test_artifact_keys_are_lowercase_dashes() -> None:
    assert artifact_key("Change_Policy", "Plan Table") == "change-policy-plan-table"
