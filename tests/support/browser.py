"""Driving Debian's chromium with Playwright's Python package (never a downloaded browser), for the tests that
use the product as a person does in a browser; they skip, saying what is missing, without either."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

CHROMIUM = "/usr/bin/chromium"
MISSING = [what for what, there in (("Debian's chromium at /usr/bin/chromium", Path(CHROMIUM).exists()),
                                    ("Playwright's Python package", importlib.util.find_spec("playwright")))
           if not there]
needs_a_browser = pytest.mark.skipif(bool(MISSING), reason=f"no browser to drive: {' and '.join(MISSING)} "
                                     "missing (make test installs both: .ci/system-deps.sh, the dev extra)")
# without the background-networking flags chromium keeps calling out of a closed network
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


def pinned_key(certificate_chain: Path) -> str:
    """The base64 SHA-256 of a certificate's public key: chromium trusts that key and no other untrusted one
    (its own store stays as it is; nothing is installed system-wide)."""
    leaf = x509.load_pem_x509_certificate(certificate_chain.read_bytes())
    spki = leaf.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@contextmanager
def chromium(trusting: Path | None = None) -> Iterator[Any]:
    """A headless chromium; `trusting`: a certificate chain (the sandbox's) it accepts."""
    from playwright.sync_api import sync_playwright

    pins = [f"--ignore-certificate-errors-spki-list={pinned_key(trusting)}"] if trusting else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, *pins])
        try:
            yield browser
        finally:
            browser.close()
