"""Encrypted column types: PII and documents are stored as Fernet tokens, decrypted on load."""

from __future__ import annotations

from typing import Any

from sqlalchemy import LargeBinary, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from fxcrm.core.security import FieldCipher

_cipher: FieldCipher | None = None


def configure_field_cipher(keys: str) -> None:
    global _cipher
    _cipher = FieldCipher(keys)


def field_cipher() -> FieldCipher:
    if _cipher is None:
        from fxcrm.core.config import get_settings

        configure_field_cipher(get_settings().field_encryption_keys)
    assert _cipher is not None
    return _cipher


class EncryptedText(TypeDecorator[str]):
    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else field_cipher().encrypt_str(str(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else field_cipher().decrypt_str(value)


class EncryptedBytes(TypeDecorator[bytes]):
    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else field_cipher().encrypt(bytes(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else field_cipher().decrypt(value)
