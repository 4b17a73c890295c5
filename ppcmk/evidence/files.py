"""The pack on disk: evidence.json, evidence.html, evidence.pdf (the page printed by a headless Chromium: the
system's, never a downloaded one) and manifest.json with each file's size and SHA-256.

Chromium is `PPCMK_CHROMIUM` or Debian's `/usr/bin/chromium` or `chromium` on the PATH. Without one the
pack has no PDF and says why; the HTML prints the same from any browser.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ppcmk.errors import ConfigError, PpcmkError
from ppcmk.evidence.html import render
from ppcmk.evidence.model import EvidencePack, ManifestEntry

CHROMIUM_SETTING = "PPCMK_CHROMIUM"
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--no-pdf-header-footer")
PRINT_TIMEOUT_S = 180
HTML, JSON_FILE, PDF, MANIFEST = "evidence.html", "evidence.json", "evidence.pdf", "manifest.json"


def chromium() -> str | None:
    configured = os.environ.get(CHROMIUM_SETTING)
    if configured:
        return configured
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")


def print_pdf(browser: str, page: Path, pdf: Path) -> None:
    """The page printed to `pdf` by headless Chromium, with a throwaway profile and no network use."""
    with tempfile.TemporaryDirectory(prefix="ppcmk-print-") as profile:
        try:
            done = subprocess.run([browser, *BROWSER_FLAGS, f"--user-data-dir={profile}",
                                   f"--print-to-pdf={pdf}", page.resolve().as_uri()],
                                  capture_output=True, text=True, timeout=PRINT_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as failed:
            raise PpcmkError(f"printing the evidence pack with {browser} failed: {failed}") from None
    if done.returncode != 0 or not pdf.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PpcmkError(f"printing the evidence pack with {browser} failed (exit {done.returncode}): {last}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_pack(pack: EvidencePack, directory: Path) -> list[ManifestEntry]:
    """The pack's files in `directory` (created), the manifest last; returns the manifest's entries."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as unwritable:
        raise ConfigError("output_dir", f"cannot create {directory}: {unwritable}",
                          "name a writable directory") from None
    browser = chromium()
    if browser is None:
        pack = pack.model_copy(update={"notes": [*pack.notes, "No PDF: no Chromium was found (install "
                                                 f"Debian's chromium, or set {CHROMIUM_SETTING})."]})
    (directory / JSON_FILE).write_text(pack.model_dump_json(indent=1), encoding="utf-8")
    (directory / HTML).write_text(render(pack), encoding="utf-8")
    names = [JSON_FILE, HTML]
    if browser is not None:
        print_pdf(browser, directory / HTML, directory / PDF)
        names.append(PDF)
    entries = [ManifestEntry(file=name, bytes=(directory / name).stat().st_size,
                             sha256=sha256(directory / name)) for name in names]
    manifest = {"pack": pack.title, "generated_at": pack.generated_at.isoformat(),
                "audit_chain_last_hash": pack.chain.last_hash, "files": [e.model_dump() for e in entries]}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return entries


def verify_pack(directory: Path) -> list[str]:
    """Problems with the pack in `directory` (empty when every file matches its manifest entry)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as unreadable:
        return [f"{MANIFEST}: cannot be read ({unreadable})"]
    problems = []
    for entry in manifest.get("files", []):
        path = directory / str(entry.get("file"))
        if not path.is_file():
            problems.append(f"{entry.get('file')}: missing")
        elif sha256(path) != entry.get("sha256"):
            problems.append(f"{entry.get('file')}: its SHA-256 differs from the manifest's (changed since)")
    return problems
