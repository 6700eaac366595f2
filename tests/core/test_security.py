"""Settings refuse dev secrets in production; tokens expire; encryption keys rotate."""

from __future__ import annotations

import jwt
import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from fxcrm.core.config import Settings
from fxcrm.core.security import (
    FieldCipher,
    decode_token,
    hash_password,
    issue_token,
    verify_password,
)


def test_production_refuses_dev_secrets() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(env="production")
    assert "FXCRM_SECRET_KEY" in str(refused.value)


def test_production_starts_with_real_secrets() -> None:
    Settings(
        env="production",
        secret_key="s" * 40,
        field_encryption_keys=Fernet.generate_key().decode(),
        kyc_webhook_secret="w" * 20,
        kyc_app_token="t" * 20,
        kyc_secret_key="k" * 20,
        mt5_manager_password="P@ssw0rd-real",
        ctrader_manager_password="ct-real-password",
        matchtrader_api_key="mtr-real-key",
        sirix_token="t1_real-token",
        mt4_bridge_secret="mt4-real-secret",
        psp_api_key="psp-real-key",
        psp_webhook_secret="psp-real-webhook-secret",
    )


def test_dev_mode_accepts_dev_secrets() -> None:
    Settings(env="dev")


def test_password_hash_roundtrip() -> None:
    hashed = hash_password("correct horse battery")
    assert verify_password(hashed, "correct horse battery")
    assert not verify_password(hashed, "wrong")
    assert not verify_password(None, "anything")


def test_expired_and_forged_tokens_are_refused() -> None:
    token = issue_token("s" * 40, "user-1", {"role": "admin"}, minutes=-1)
    with pytest.raises(jwt.ExpiredSignatureError):
        decode_token("s" * 40, token)
    good = issue_token("s" * 40, "user-1", {"role": "admin"}, minutes=5)
    assert decode_token("s" * 40, good)["role"] == "admin"
    with pytest.raises(jwt.InvalidSignatureError):
        decode_token("o" * 40, good)


def test_field_cipher_rotation() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = FieldCipher(old).encrypt(b"passport")
    rotated_cipher = FieldCipher(f"{new},{old}")
    assert rotated_cipher.decrypt(token) == b"passport"
    rotated = rotated_cipher.rotate(token)
    assert FieldCipher(new).decrypt(rotated) == b"passport"
    with pytest.raises(ValueError):
        FieldCipher(new).decrypt(token)
