"""Password hashing (argon2), signed expiring tokens (JWT HS256), field-level encryption (Fernet)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_hasher = PasswordHasher()
# Verifying against this keeps the timing of "unknown user" close to "wrong password".
_DUMMY_HASH = _hasher.hash("not-a-real-password")
TOKEN_ALGORITHM = "HS256"  # noqa: S105


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def issue_token(secret: str, subject: str, claims: dict[str, Any], minutes: int) -> str:
    now = datetime.now(UTC)
    payload = {"sub": subject, "iat": now, "exp": now + timedelta(minutes=minutes), **claims}
    return jwt.encode(payload, secret, algorithm=TOKEN_ALGORITHM)


def decode_token(secret: str, token: str) -> dict[str, Any]:
    """Raises jwt.InvalidTokenError (expired, forged, malformed)."""
    return jwt.decode(
        token, secret, algorithms=[TOKEN_ALGORITHM], options={"require": ["exp", "sub"]}
    )


class FieldCipher:
    """Encrypts PII and documents at rest. The first key encrypts; every key decrypts (rotation)."""

    def __init__(self, keys: str) -> None:
        self._fernet = MultiFernet([Fernet(k.strip()) for k in keys.split(",") if k.strip()])

    def encrypt(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise ValueError("cannot decrypt field: unknown key or tampered data") from exc

    def rotate(self, token: bytes) -> bytes:
        return self._fernet.rotate(token)

    def encrypt_str(self, value: str) -> str:
        return self.encrypt(value.encode()).decode()

    def decrypt_str(self, value: str) -> str:
        return self.decrypt(value.encode()).decode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
