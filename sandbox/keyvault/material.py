"""Real key material (cryptography): generated lazily, cached per key version (fast resets)."""

from __future__ import annotations

import base64
import threading
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
    "P-256K": ec.SECP256K1(),
}

# version id -> private key. Generating RSA 3072/4096 costs up to a second; a scenario's fixed version
# ids make every later reset reuse the first generation.
_cache: dict[str, PrivateKey] = {}
_cache_guard = threading.Lock()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _int_from(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


def private_key_for(version: str, kty: str, size: int | None, curve: str | None) -> PrivateKey:
    with _cache_guard:
        cached = _cache.get(version)
    if cached is not None:
        return cached
    key: PrivateKey
    if kty.startswith("EC"):
        key = ec.generate_private_key(CURVES[curve or "P-256"])
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=size or 2048)
    with _cache_guard:
        return _cache.setdefault(version, key)


def remember(version: str, key: PrivateKey) -> None:
    """Register imported or restored material for a version."""
    with _cache_guard:
        _cache[version] = key


def to_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def from_pem(pem: str) -> PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("only RSA and EC keys are supported")
    return key


def public_jwk(key: PrivateKey) -> dict[str, Any]:
    """The public half as JWK fields (n/e or crv/x/y), base64url without padding."""
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        return {"n": b64url(_int_bytes(numbers.n)), "e": b64url(_int_bytes(numbers.e))}
    point = key.public_key().public_numbers()
    width = (key.curve.key_size + 7) // 8
    return {"x": b64url(point.x.to_bytes(width, "big")), "y": b64url(point.y.to_bytes(width, "big"))}


def private_from_jwk(jwk: dict[str, Any]) -> PrivateKey:
    """Material of an import request (RSA with n, e, d, p, q, dp, dq, qi; or EC with crv, x, y, d)."""
    kty = str(jwk.get("kty", ""))
    if kty.startswith("RSA"):
        public = rsa.RSAPublicNumbers(_int_from(jwk["e"]), _int_from(jwk["n"]))
        return rsa.RSAPrivateNumbers(
            p=_int_from(jwk["p"]),
            q=_int_from(jwk["q"]),
            d=_int_from(jwk["d"]),
            dmp1=_int_from(jwk["dp"]),
            dmq1=_int_from(jwk["dq"]),
            iqmp=_int_from(jwk["qi"]),
            public_numbers=public,
        ).private_key()
    if kty.startswith("EC"):
        curve = CURVES[jwk["crv"]]
        public_ec = ec.EllipticCurvePublicNumbers(_int_from(jwk["x"]), _int_from(jwk["y"]), curve)
        return ec.EllipticCurvePrivateNumbers(_int_from(jwk["d"]), public_ec).private_key()
    raise ValueError(f"unsupported kty {kty!r}")


def _rsa_padding(alg: str) -> padding.AsymmetricPadding:
    if alg == "RSA1_5":
        return padding.PKCS1v15()
    if alg == "RSA-OAEP":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    if alg == "RSA-OAEP-256":
        return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    raise ValueError(f"algorithm {alg!r} is not supported; use RSA-OAEP, RSA-OAEP-256 or RSA1_5")


def rsa_encrypt(key: PrivateKey, alg: str, plaintext: bytes) -> bytes:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("encrypt/wrap needs an RSA key")
    return key.public_key().encrypt(plaintext, _rsa_padding(alg))


def rsa_decrypt(key: PrivateKey, alg: str, ciphertext: bytes) -> bytes:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("decrypt/unwrap needs an RSA key")
    return key.decrypt(ciphertext, _rsa_padding(alg))


def is_materialised(version: str) -> bool:
    with _cache_guard:
        return version in _cache
