"""migrate_byok's plan after BYOK's end of support: it says support ended and what that means, names the
environments the platform reverted (which it leaves alone), and what linking means for their flows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from ppcmk.models.environments import Environment
from ppcmk.safety.plan import Plan
from ppcmk_flows._two_half import environments_planned
from ppcmk_flows.migrate_byok import MigrateByok
from tests.core.test_power_automate import TARGET

REVERTED_AT = datetime(2026, 1, 6, 3, tzinfo=UTC)


def environment(env_id: str, name: str, key_managed_by: str) -> Environment:
    return Environment(id=env_id, display_name=name, geo="europe", sku="Production",
                       protection_level="Standard", runtime_state="Enabled", runtime_reason="NotSpecified",
                       cmk=None, key_managed_by=key_managed_by, created_time=datetime(2024, 3, 1, tzinfo=UTC))


def test_the_plan_says_byok_ended_names_the_reverted_and_links_the_leftover() -> None:
    byok = environment("e-byok", "Legacy BYOK", "CustomerViaMicrosoft")
    reverted = environment("e-reverted", "US Production", "Microsoft")
    migrate = MigrateByok(TARGET, None, True)
    plan = Plan(procedure="migrate_byok", requester="kv-admin@contoso.example", target_summary="test")

    def moves(plan: Plan, policy: None, listed: Sequence[Environment]) -> None:
        migrate.plan_environments(plan, policy, listed, {reverted.id: REVERTED_AT})

    environments_planned(plan, moves, None, [byok, reverted])
    found = {f.check: f for f in plan.findings}
    assert "BYOK support ended on 2026-01-06" in found["byok.end_of_support"].message
    assert "moves 1 environment(s) still on BYOK" in found["byok.end_of_support"].message
    reverted_note = found["byok.reverted"].message
    assert reverted_note.startswith("US Production: reverted to the Microsoft-managed key by the platform on "
                                    "2026-01-06")
    assert "onboard" in reverted_note
    assert "power_automate.migration" in found
    assert [item.target for item in plan.items if item.changes] == ["e-byok"]
