"""RSA keys with a self-signed certificate, kept as one PEM file: the authority's token-signing key, the
workload issuer's key and each service principal's client certificate.

Made once per sandbox home and read back on restart, so tokens and certificates a client holds stay valid
across restarts of a sandbox with a state file.
"""

from __future__ import annotations

import base64
import datetime
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CERTIFICATE_YEARS = 2


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (mode 0600 from creation, never briefly wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    scratch.replace(path)


@dataclass(frozen=True)
class KeyPair:
    """A private key and its certificate; `path` holds both as PEM (what CertificateCredential reads)."""

    path: Path
    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def load_or_create(cls, path: Path, subject: str) -> KeyPair:
        if path.exists():
            pem = path.read_bytes()
            key = serialization.load_pem_private_key(pem, password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            return cls(path, key, x509.load_pem_x509_certificate(pem))
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pair = cls(path, key, _self_signed(key, subject))
        write_private(path, pair.pem())
        return pair

    def pem(self) -> str:
        key = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return (key + self.certificate.public_bytes(serialization.Encoding.PEM)).decode()

    @property
    def thumbprint_sha1(self) -> str:
        """`x5t`: base64url of the certificate's SHA-1 digest (what MSAL sends with a thumbprint)."""
        return b64url(self.certificate.fingerprint(hashes.SHA1()))  # Entra's x5t is SHA-1

    @property
    def thumbprint_sha256(self) -> str:
        """`x5t#S256`: base64url of the certificate's SHA-256 digest."""
        return b64url(self.certificate.fingerprint(hashes.SHA256()))

    def jwk(self, issuer: str) -> dict[str, Any]:
        """The public key as Entra publishes it in a JWKS: `kid` equal to `x5t`, the certificate in `x5c`."""
        numbers = self.private_key.public_key().public_numbers()
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.thumbprint_sha1,
            "x5t": self.thumbprint_sha1,
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            "x5c": [base64.b64encode(der).decode()],
            "issuer": issuer,
        }

    def sign(self, claims: dict[str, Any], **header: str) -> str:
        return jwt.encode(
            claims,
            self.private_key,
            algorithm="RS256",
            headers={"typ": "JWT", "kid": self.thumbprint_sha1, **header},
        )

    def verify(self, token: str, algorithms: tuple[str, ...] = ("RS256",), **options: Any) -> dict[str, Any]:
        """The claims of `token` if this key signed it with one of `algorithms` (never `none`); raises
        jwt.InvalidTokenError. `options` go to jwt.decode (audience, issuer, which claims to check)."""
        claims: dict[str, Any] = jwt.decode(
            token, self.private_key.public_key(), algorithms=list(algorithms), **options
        )
        return claims


def _self_signed(key: rsa.RSAPrivateKey, subject: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365 * CERTIFICATE_YEARS))
        .sign(key, hashes.SHA256())
    )


def digest_equal(secret: str, offered: str) -> bool:
    """Constant-time comparison of a secret with what a caller offered."""
    return hmac.compare_digest(secret.encode(), offered.encode())
