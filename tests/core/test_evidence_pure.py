"""The pack's pure parts on hand-made audit entries: an approver's proof shown generically (a signed token
only by its fingerprint), and a lock no lock run explains, drawn from what watch recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ppcmk.evidence.build import build_pack
from ppcmk.evidence.changes import changes_in
from ppcmk.evidence.history import Reading
from ppcmk.evidence.model import ChainCheck, Period, Scope
from ppcmk.models.environments import CmkLink, Environment
from ppcmk.watch.estate import EstateFacts

START = datetime(2027, 1, 1, tzinfo=UTC)
PERIOD = Period(start=START, end=START + timedelta(days=365))
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwcC1hZG1pbiJ9.c2lnbmF0dXJlLXBhcnQ"
POLICY = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-x"


def entry(seq: int, days: int, event: dict[str, Any], run: str = "run-1") -> dict[str, Any]:
    return {"seq": seq, "at": (START + timedelta(days=days)).isoformat(), "by": {"flow_run_id": run,
            "flow_run_name": run}, "event": event, "prev": "", "hash": ""}


def test_an_approvers_proof_is_every_field_of_the_answer_a_signed_token_only_by_its_hash() -> None:
    answer = {"event": "approval-answered", "procedure": "revert", "plan_hash": "p1", "requester": "kv-admin",
              "approver": "PP Admin (pp-admin@contoso.example)", "approver_id": "0a0a0002",
              "decision": "approve", "connection_block": "pp-admin", "identity_proof": {"issuer": "https://idp.example"},
              "signed": TOKEN}
    finished = {"event": "revert-finished", "procedure": "revert", "plan_hash": "p1", "requester": "kv-admin",
                "status": "completed", "environments": [{"environment_id": "e1", "name": "Finance"}]}
    (change,) = changes_in([entry(1, 10, answer), entry(2, 10, finished)], PERIOD, None)
    (approver,) = change.approvers
    assert approver.approver == "PP Admin (pp-admin@contoso.example)" and approver.decision == "approve"
    assert approver.proof["approver_id"] == "0a0a0002" and approver.proof["connection_block"] == "pp-admin"
    assert "https://idp.example" in approver.proof["identity_proof"]
    assert approver.proof["signed"].startswith("signed token, sha256 ")
    assert TOKEN not in change.model_dump_json()
    assert change.outcome == "completed" and change.subjects == ["Finance"] and change.requester == "kv-admin"


def test_a_lock_outside_ppcmk_is_drawn_from_the_findings_watch_recorded() -> None:
    env = Environment(id="e1", display_name="Finance", geo="europe", sku="Production",
                      protection_level="Standard", runtime_state="Enabled", runtime_reason="NotSpecified",
                      key_managed_by="Customer",
                      cmk=CmkLink(policy_id=POLICY, system_id="x", link_status="Linked"))
    appeared = {"change": "appeared", "kind": "env.locked", "object": "Finance", "object_id": "e1",
                "severity": "critical", "since": (START + timedelta(days=40)).isoformat()}
    resolved = {"change": "resolved", "kind": "env.locked", "object": "Finance", "object_id": "e1"}
    entries = [entry(1, 40, {"event": "drift-changed", "changes": [appeared]}, "watch-1"),
               entry(2, 43, {"event": "drift-changed", "changes": [resolved]}, "watch-2")]
    reading = Reading(EstateFacts(now=PERIOD.end), [env], entries=entries)
    pack = build_pack(reading, ChainCheck(store="test", entries=2, intact=True), PERIOD, Scope(), [], [],
                      PERIOD.end)
    (lane,) = pack.environments
    (lock,) = [s for s in lane.spans if s.kind == "lock"]
    assert (lock.start, lock.end) == (START + timedelta(days=40), START + timedelta(days=43))
    (finding,) = pack.findings
    assert finding.kind == "env.locked" and finding.resolved == START + timedelta(days=43)
    assert pack.changes == []  # watch's records are findings, not changes
