"""A throwaway certificate authority and a leaf for 127.0.0.1 / localhost, written as PEM files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # what clients pass as connection_verify
    cert_chain: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA(organization_name="ppcmk sandbox")
    leaf = authority.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(
        directory / "sandbox-ca.pem", directory / "sandbox-cert.pem", directory / "sandbox-key.pem"
    )
    authority.cert_pem.write_to_path(str(files.ca))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(files.cert_chain))
    leaf.private_key_pem.write_to_path(str(files.key))
    return files
