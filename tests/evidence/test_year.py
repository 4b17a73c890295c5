"""A virtual year of the CMK story on the session sandbox, then its evidence pack: onboard, three rotations
(each taken up by the linked environments), a lock and its unlock, a change of policy and a revert, watch
runs along the way; then the pack read back as an auditor would, a copy of the audit chain with one entry
edited, the page in a real browser and the PDF's text. The year is built once for the module."""

from __future__ import annotations

import hashlib
import json
import shutil
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from ppcmk.audit.trail import AuditLog
from ppcmk.evidence.files import verify_pack
from ppcmk.evidence.html import SECTIONS
from ppcmk.evidence.model import Scope
from ppcmk.fleet.selection import FleetSelector
from ppcmk_flows.evidence import evidence
from ppcmk_flows.onboard import onboard
from ppcmk_flows.rotate import rotate
from ppcmk_flows.unlock import unlock
from ppcmk_tasks.evidence import EvidenceResult, evidence_pack
from tests.support.browser import chromium, needs_a_browser
from tests.support.lock import locked_by_two
from tests.support.runs import (
    approve_next,
    completed,
    forget_run_state,
    start_change,
    start_revert,
    start_with_sandbox_blocks,
)
from tests.support.sandbox import connection
from tests.support.scenario import FINANCE, PP_ADMIN, PP_ADMIN_2, PRODUCTION, REQUESTER
from tests.support.watching import clear_watch_state, run_watch

pytestmark = [pytest.mark.usefixtures("prefect_backend"), pytest.mark.timeout(600)]
APPROVED = ("onboard", "lock", "unlock", "change_policy", "revert")


@dataclass
class Year:
    home: Path
    result: EvidenceResult
    pack: dict[str, Any]
    tampered: EvidenceResult

    def page(self, result: EvidenceResult | None = None) -> str:
        return (Path((result or self.result).directory) / "evidence.html").read_text(encoding="utf-8")


def live_the_year(cloud: Any, blocks: dict[str, str]) -> None:
    def watched() -> None:
        run_watch(blocks)

    def later(days: float) -> None:
        cloud.clock.advance(timedelta(days=days))

    running = start_with_sandbox_blocks(onboard, blocks, pp_admin=PP_ADMIN,
                                        selector=FleetSelector(environment_ids=[PRODUCTION]))
    approve_next(running, PP_ADMIN, connection_block=blocks["pp-admin"])
    completed(running, timeout=120)
    for _ in range(3):
        later(31)
        assert rotate(connection=blocks["kv-admin"], target=blocks["target"], requester=REQUESTER).status == \
            "completed"
        later(1)  # the linked environments take the new version up (the sandbox: 6 hours)
    watched()
    assert locked_by_two(blocks).status == "completed"
    watched()
    later(2)
    running = start_with_sandbox_blocks(unlock, blocks)
    approve_next(running, PP_ADMIN_2)
    completed(running, timeout=120)
    watched()
    running = start_change(blocks, selector=FleetSelector(environment_ids=[PRODUCTION]))
    approve_next(running, PP_ADMIN, connection_block=blocks["pp-admin"])
    completed(running, timeout=120)
    later(30)
    running = start_revert(blocks, selector=FleetSelector(environment_ids=[FINANCE]))
    approve_next(running, PP_ADMIN)
    completed(running, timeout=120)
    later(150)


def tamper(chain: Path) -> None:
    """One entry of the chain edited in place, as someone covering a trail would: who asked for a rotation."""
    for path in sorted((chain / "entries").glob("*.json")):
        entry = json.loads(path.read_text())
        if entry["event"].get("event") == "rotation":
            entry["event"]["requester"] = "someone-else@contoso.example"
            path.write_text(json.dumps(entry, sort_keys=True))
            return
    raise AssertionError("no rotation entry to tamper with")


@pytest.fixture(scope="module")
def year(sandbox_server: Any, sandbox_blocks: dict[str, str],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Year]:
    home = tmp_path_factory.mktemp("evidence-year")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PPCMK_HOME", str(home))
        sandbox_server.reset()
        forget_run_state()
        clear_watch_state()
        live_the_year(sandbox_server, sandbox_blocks)
        result = evidence(connection=sandbox_blocks["runbook"], output_dir=str(home / "pack"))
        shutil.copytree(home / "audit", home / "tampered-audit")
        tamper(home / "tampered-audit")
        tampered = evidence_pack(connection(sandbox_server), Scope(), output_dir=str(home / "tampered-pack"),
                                 log=AuditLog(home / "tampered-audit"))
        pack = json.loads((Path(result.directory) / "evidence.json").read_text())
        yield Year(home, result, pack, tampered)


def test_every_change_appears_with_requester_approvers_and_outcome(year: Year) -> None:
    entries = AuditLog(year.home / "audit").entries()
    ended = [e["event"] for e in entries if e["event"]["event"].endswith("-finished")
             or e["event"]["event"] == "rotation"]
    by_hash = {c["plan_hash"]: c for c in year.pack["changes"]}
    assert len(ended) == 8 and len(by_hash) == 8, [c["procedure"] for c in year.pack["changes"]]
    for event in ended:
        change = by_hash[event["plan_hash"]]
        assert change["requester"] == REQUESTER and change["outcome"].startswith("completed"), change
    page = year.page()
    for change in year.pack["changes"]:
        assert change["plan_hash"] in page
        if change["procedure"] not in APPROVED:
            continue
        approvers = change["approvers"]
        assert approvers and all(a["decision"] == "approve" for a in approvers), change
        for approver in approvers:  # who answered, and what proves it: the block they signed in with
            assert {"approver_id", "connection_block"} <= set(approver["proof"]), approver
            assert approver["approver"] in page and approver["proof"]["approver_id"] in page
        if change["procedure"] == "lock":
            assert len({a["proof"]["approver_id"] for a in approvers}) == 2
    assert sorted(c["procedure"] for c in year.pack["changes"]) == sorted(
        ["onboard", "rotate", "rotate", "rotate", "lock", "unlock", "change_policy", "revert"])


def test_the_chain_verifies_and_the_pack_names_its_last_hash(year: Year) -> None:
    head = AuditLog(year.home / "audit").head()
    assert year.result.chain_intact and year.pack["chain"]["intact"]
    assert head is not None and year.pack["chain"]["last_hash"] == head["hash"] == year.result.last_hash
    assert head["hash"] in year.page() and "FAILED verification" not in year.page()


def test_a_tampered_copy_fails_verification_and_its_pack_says_so(year: Year) -> None:
    assert not year.tampered.chain_intact
    assert any("content changed after it was written" in p for p in year.tampered.chain_problems)
    assert "The audit chain FAILED verification" in year.page(year.tampered)
    assert "someone-else@contoso.example" in year.page(year.tampered)  # shown as the altered record reads


def test_the_manifest_hashes_match_and_a_changed_file_is_named(year: Year, tmp_path: Path) -> None:
    directory = Path(year.result.directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert {f["file"] for f in manifest["files"]} == {"evidence.html", "evidence.json", "evidence.pdf"}
    for listed in manifest["files"]:
        assert hashlib.sha256((directory / listed["file"]).read_bytes()).hexdigest() == listed["sha256"]
    assert verify_pack(directory) == []
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    (copy / "evidence.json").write_text("{}")
    assert verify_pack(copy) == ["evidence.json: its SHA-256 differs from the manifest's (changed since)"]


def test_each_rotation_was_taken_up_by_each_linked_environment(year: Year) -> None:
    pickups = year.pack["pickups"]
    assert {(p["environment"], p["status"]) for p in pickups} == {("Finance on CMK", "picked-up"),
                                                                  ("Contoso Production", "picked-up")}
    assert len(pickups) == 6  # three new versions, two environments on the key each time
    assert all(p["picked_up"] <= p["due"] for p in pickups)


def test_timelines_coverage_and_findings_tell_the_year(year: Year) -> None:
    lanes = {lane["name"]: lane for lane in year.pack["environments"]}
    finance = lanes["Finance on CMK"]
    assert {s["kind"] for s in finance["spans"]} >= {"cmk", "lock", "outage"}
    assert [s["end"] is not None for s in finance["spans"] if s["kind"] == "cmk"] == [True]  # reverted
    assert {m["kind"] for m in lanes["Contoso Production"]["marks"]} == {"pickup"}
    key = next(k for k in year.pack["keys"] if k["name"] == "kv-cmk-prod/cmk-prod")
    assert sum(m["kind"] == "rotation" for m in key["marks"]) == 3
    assert [p["on_cmk"] for p in year.pack["coverage"]][-1] == 1  # Contoso Production, on the new policy
    assert max(p["on_cmk"] for p in year.pack["coverage"]) == 2
    locks = [f for f in year.pack["findings"] if f["kind"] == "env.locked"]
    assert {f["object"] for f in locks} == {"Finance on CMK", "Contoso Production"}
    assert all(f["resolved"] for f in locks)


def test_the_runbook_publishes_the_pack_and_a_summary(year: Year) -> None:
    with get_client(sync_client=True) as client:
        keys = {a.key: a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["evidence-pack", "evidence-summary"])))}
    assert (Path(year.result.directory) / "evidence.html").as_uri() in str(keys["evidence-pack"].data)
    assert year.result.last_hash in str(keys["evidence-summary"].data)


def pdf_text(result: EvidenceResult) -> str:
    """The PDF's text as a reader copies it (ligatures such as "fi" spelled out)."""
    from pypdf import PdfReader

    pages = PdfReader(Path(result.directory) / "evidence.pdf").pages
    return unicodedata.normalize("NFKC", " ".join(page.extract_text() for page in pages))


def test_the_pdf_has_the_same_sections(year: Year) -> None:
    text = pdf_text(year.result)
    for _, heading in SECTIONS:
        assert heading in text, heading
    assert year.result.last_hash in text.replace("\n", "")
    assert "FAILED verification" in pdf_text(year.tampered)


@needs_a_browser
def test_a_browser_shows_the_timelines_and_the_coverage_chart(year: Year) -> None:
    shot = year.home / "evidence.png"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((Path(year.result.directory) / "evidence.html").as_uri())
        assert page.locator("#key-timeline rect.span-version").count() >= 4
        assert page.locator("#environment-timeline rect.span-cmk").count() >= 2
        assert page.locator("#environment-timeline rect.span-lock").count() >= 2
        assert page.locator("#coverage path.on-cmk").count() == 1
        page.locator("#key-timelines").scroll_into_view_if_needed()
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
