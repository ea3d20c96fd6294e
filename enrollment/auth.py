"""API keys for the HTTP service: generation, hashing and constant-time checks.

A key looks like ``sv_<key_id>_<secret>``: ``key_id`` (12 hex digits) finds
the stored row, ``secret`` (32 random bytes, URL-safe base64) is never stored;
the store keeps ``salt`` and ``HMAC-SHA256(salt, secret)``. A slow KDF
(scrypt, PBKDF2) protects low-entropy passwords against guessing; these
secrets carry 256 random bits, so one keyed hash is as strong and keeps
per-request authentication in microseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = [
    "ApiKeyInfo",
    "GeneratedKey",
    "generate_key",
    "hash_secret",
    "parse_key",
    "secrets_match",
    "validate_key_name",
]

_KEY_RE = re.compile(r"sv_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# Hash compared against when the key id is unknown, so that unknown and
# wrong keys take the same time.
_DUMMY_SALT = b"\x00" * 16


@dataclass(frozen=True)
class GeneratedKey:
    """A freshly generated key: ``plaintext`` is shown once and never stored."""

    key_id: str
    plaintext: str
    salt: bytes
    digest: bytes


@dataclass(frozen=True)
class ApiKeyInfo:
    """Public description of a stored key (no secret material)."""

    key_id: str
    name: str
    created_at: str
    revoked_at: str | None
    tenant: str = "default"
    scope: str = "tenant"

    @property
    def active(self) -> bool:
        """Whether the key is accepted."""
        return self.revoked_at is None

    @property
    def is_admin(self) -> bool:
        """Whether the key may manage tenants and keys."""
        return self.scope == "admin"

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly view."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "active": self.active,
            "tenant": self.tenant,
            "scope": self.scope,
        }


def validate_key_name(name: str) -> str:
    """Return ``name`` if it is a valid key name, else raise ``ValueError``."""
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise ValueError(
            f"invalid key name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def hash_secret(secret: str, salt: bytes) -> bytes:
    """Keyed SHA-256 of a key's secret part."""
    return hmac.new(salt, secret.encode("ascii"), hashlib.sha256).digest()


def generate_key() -> GeneratedKey:
    """Create a new random key and its stored form."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    return GeneratedKey(
        key_id=key_id,
        plaintext=f"sv_{key_id}_{secret}",
        salt=salt,
        digest=hash_secret(secret, salt),
    )


def parse_key(key: str | None) -> tuple[str, str] | None:
    """Split a presented key into ``(key_id, secret)``; ``None`` if malformed."""
    if not key or len(key) > 128:
        return None
    match = _KEY_RE.fullmatch(key.strip())
    if match is None:
        return None
    return match.group(1), match.group(2)


def secrets_match(secret: str, salt: bytes | None, digest: bytes | None) -> bool:
    """Constant-time check of ``secret`` against a stored ``(salt, digest)``.

    With ``salt``/``digest`` ``None`` (unknown key id) the hash is still
    computed against a dummy so that the timing does not reveal which ids exist.
    """
    if salt is None or digest is None:
        hmac.compare_digest(hash_secret(secret, _DUMMY_SALT), b"\x00" * 32)
        return False
    return hmac.compare_digest(hash_secret(secret, salt), digest)
