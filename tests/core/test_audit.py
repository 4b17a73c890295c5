"""The shared audit chain: one object per entry, tampering found, secrets kept out, and several processes
appending at once through the Prefect global concurrency limit form one intact chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.filesystems import LocalFileSystem
from prefect.settings import PREFECT_API_URL
from pydantic import SecretStr

from ppcmk.audit import trail as audit
from ppcmk.audit.store import AUDIT_LOCK, AUDIT_STORAGE_SETTING, configured_storage
from ppcmk.audit.trail import AuditLog
from ppcmk.cloud.request_log import note_response, request_ids
from ppcmk.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _filled(folder: Path) -> AuditLog:
    log = AuditLog(folder)
    for step in ("plan", "approve", "apply"):
        log.record({"event": step, "env": "e1"})
    return log


def _entry_file(folder: Path, sequence: int) -> Path:
    return folder / AuditLog.entry_path(sequence)


def test_intact_chain_verifies_and_each_entry_is_one_object(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    assert log.verify_chain() == []
    entries = log.entries()
    assert [e["event"]["event"] for e in entries] == ["plan", "approve", "apply"]
    assert entries[1]["prev"] == entries[0]["hash"]
    assert sorted(p.name for p in (tmp_path / "entries").iterdir()) == [f"{n:012d}.json" for n in (1, 2, 3)]


def test_edited_entry_is_detected(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    path = _entry_file(tmp_path, 2)
    entry = json.loads(path.read_text())
    entry["event"]["event"] = "approved-by-someone-else"
    path.write_text(json.dumps(entry))
    assert log.verify_chain() == ["entry 2: content changed after it was written"]


def test_removed_entry_is_detected(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    _entry_file(tmp_path, 2).unlink()
    assert any("entry 2: missing" in problem for problem in log.verify_chain())


def test_swapped_entries_are_detected(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    second, third = _entry_file(tmp_path, 2), _entry_file(tmp_path, 3)
    content = second.read_text()
    second.write_text(third.read_text())
    third.write_text(content)
    assert any("removed or reordered" in problem for problem in log.verify_chain())


def test_a_cut_off_tail_is_detected_by_the_head(tmp_path: Path) -> None:
    log = _filled(tmp_path)
    (tmp_path / "head.json").write_text(json.dumps({"seq": 2, "hash": log.entries()[1]["hash"]}))
    _entry_file(tmp_path, 3).unlink()
    assert log.verify_chain() == []  # consistent, so the head is the only witness ...
    (tmp_path / "head.json").write_text(json.dumps({"seq": 3, "hash": "0" * 64}))
    assert any("head names entry 3" in problem for problem in log.verify_chain())  # ... and is checked


def test_secrets_never_reach_an_entry(tmp_path: Path) -> None:
    entry = AuditLog(tmp_path).record({"event": "x", "client_secret": "s3cr3t", "nested": [
        {"access_token": "eyJ..."}], "settings": SecretStr("hidden")})
    stored = _entry_file(tmp_path, 1).read_text()
    assert "s3cr3t" not in stored and "eyJ" not in stored and "hidden" not in stored
    assert entry["event"]["client_secret"] == audit.REDACTED


def test_default_store_lives_under_ppcmk_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path))
    monkeypatch.delenv(AUDIT_STORAGE_SETTING, raising=False)
    audit.record({"event": "x"})
    assert (tmp_path / "audit" / "head.json").exists() and audit.verify_chain() == []


def test_entries_name_the_policy_and_environments_for_the_event_feed() -> None:
    related = audit._related({"event": "revert-finished", "policy": "ep-a",
                              "environments": [{"environment_id": "e1"}, "e2"]})
    assert [r["prefect.resource.id"] for r in related] == [
        "ppcmk.policy.ep-a", "ppcmk.environment.e1", "ppcmk.environment.e2"]


def test_the_store_is_the_block_the_setting_names(
        prefect_backend: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    LocalFileSystem(basepath=str(tmp_path / "shared")).save("audit-test-store", overwrite=True)
    monkeypatch.setenv(AUDIT_STORAGE_SETTING, "local-file-system/audit-test-store")
    assert Path(str(getattr(configured_storage(), "basepath", ""))) == tmp_path / "shared"
    monkeypatch.setenv(AUDIT_STORAGE_SETTING, "local-file-system/no-such-block")
    with pytest.raises(ConfigError, match=AUDIT_STORAGE_SETTING):
        configured_storage()


WRITER = """
import sys
from ppcmk.audit.trail import AuditLog
log = AuditLog()
for number in range(int(sys.argv[2])):
    log.record({"event": "concurrent", "writer": sys.argv[1], "number": number})
"""


def test_three_processes_appending_at_once_form_one_chain(
        prefect_backend: None, tmp_path: Path) -> None:
    """Through the server's `ppcmk-audit` limit, as workers on three machines would."""
    LocalFileSystem(basepath=str(tmp_path / "shared")).save("audit-concurrent", overwrite=True)
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(ROOT),
           AUDIT_STORAGE_SETTING: "local-file-system/audit-concurrent"}
    per_writer = 15
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, name, str(per_writer)], cwd=ROOT, env=env,
                                stderr=subprocess.PIPE) for name in ("a", "b", "c")]
    for writer in writers:
        _, errors = writer.communicate(timeout=100)
        assert writer.returncode == 0, errors.decode()[-2000:]
    log = AuditLog(tmp_path / "shared")
    assert log.verify_chain() == []
    written = sorted((e["event"]["writer"], e["event"]["number"]) for e in log.entries())
    assert written == sorted((name, n) for name in "abc" for n in range(per_writer))


def test_an_append_refuses_when_the_limit_that_serialises_it_is_gone(
        prefect_backend: None, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    log = AuditLog(tmp_path)
    log.record({"event": "before"})  # the limit is checked (once) and used
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(AUDIT_LOCK)
        try:
            with pytest.raises(ConfigError, match=f"global concurrency limit {AUDIT_LOCK}"):
                log.record({"event": "unserialised"})
        finally:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=AUDIT_LOCK, limit=1))
    assert [e["event"]["event"] for e in log.entries()] == ["before"]


def test_request_ids_are_collected_per_context() -> None:
    note_response("GET", "https://h/outside", 200, {"x-ms-request-id": "ignored"})
    with request_ids() as outer:
        note_response("GET", "https://h/a?sig=secret", 200, {"x-ms-request-id": "r1"})
        with request_ids() as inner:
            note_response("POST", "https://h/b", 202, {"x-ms-correlation-id": "c2"})
        assert [r.ids for r in inner] == [{"x-ms-correlation-id": "c2"}]
    assert [r.url for r in outer] == ["https://h/a", "https://h/b"]
    assert outer[0].ids == {"x-ms-request-id": "r1"}


def test_audit_commands_verify_and_show_the_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ppcmk_cli import app

    monkeypatch.setenv("PPCMK_HOME", str(tmp_path))
    monkeypatch.delenv(AUDIT_STORAGE_SETTING, raising=False)
    _filled(tmp_path / "audit")
    verified = CliRunner().invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0 and "audit chain intact: 3 entries" in verified.output, verified.output
    shown = CliRunner().invoke(app, ["audit", "show", "--json"])
    assert [e["event"]["event"] for e in json.loads(shown.output)] == ["plan", "approve", "apply"]
    first_run = CliRunner().invoke(app, ["audit", "show", "--run", "ffff", "--json"])
    assert first_run.exit_code == 2 and "--run ffff: no audited run starts with it" in first_run.output
    not_an_id = CliRunner().invoke(app, ["audit", "show", "--run", "no-such-run", "--json"])
    assert not_an_id.exit_code == 2 and "--run: 'no-such-run' is not a flow run id" in not_an_id.output
    _entry_file(tmp_path / "audit", 1).write_text("{}")
    broken = CliRunner().invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1 and "entry 1" in broken.output, broken.output
