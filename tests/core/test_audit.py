"""The audit log's hash chain detects tampering; request ids are collected per context."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ppcmk import audit
from ppcmk.audit import AuditLog, note_response, request_ids


def _filled(path: Path) -> AuditLog:
    log = AuditLog(path)
    for step in ("plan", "approve", "apply"):
        log.record({"event": step, "env": "e1"})
    return log


def test_intact_chain_verifies(tmp_path: Path) -> None:
    log = _filled(tmp_path / "audit.jsonl")
    assert log.verify_chain() == []
    entries = log.entries()
    assert [e["event"]["event"] for e in entries] == ["plan", "approve", "apply"]
    assert entries[1]["prev"] == entries[0]["hash"]


def test_edited_line_is_detected(tmp_path: Path) -> None:
    log = _filled(tmp_path / "audit.jsonl")
    lines = log.path.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["event"]["event"] = "approved-by-someone-else"
    lines[1] = json.dumps(entry, sort_keys=True)
    log.path.write_text("\n".join(lines) + "\n")
    assert any("line 2: content changed" in problem for problem in log.verify_chain())


@pytest.mark.parametrize("mutation", ["delete", "reorder"])
def test_removed_or_reordered_lines_are_detected(tmp_path: Path, mutation: str) -> None:
    log = _filled(tmp_path / "audit.jsonl")
    lines = log.path.read_text().splitlines()
    lines = [lines[0], lines[2]] if mutation == "delete" else [lines[0], lines[2], lines[1]]
    log.path.write_text("\n".join(lines) + "\n")
    assert any("removed or reordered" in problem for problem in log.verify_chain())


def test_default_log_lives_under_ppcmk_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path))
    audit.record({"event": "x"})
    assert (tmp_path / "audit.jsonl").exists() and audit.verify_chain() == []


def test_request_ids_are_collected_per_context() -> None:
    note_response("GET", "https://h/outside", 200, {"x-ms-request-id": "ignored"})
    with request_ids() as outer:
        note_response("GET", "https://h/a?sig=secret", 200, {"x-ms-request-id": "r1"})
        with request_ids() as inner:
            note_response("POST", "https://h/b", 202, {"x-ms-correlation-id": "c2"})
        assert [r.ids for r in inner] == [{"x-ms-correlation-id": "c2"}]
    assert [r.url for r in outer] == ["https://h/a", "https://h/b"]
    assert outer[0].ids == {"x-ms-request-id": "r1"}
