"""Settings from the environment (pydantic-settings). Dev defaults never work outside dev mode."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Well-known development secrets: fine on a laptop, refused at start anywhere else.
DEV_SECRET_KEY = "dev-secret-key-change-me-0123456789abcdef"  # noqa: S105
DEV_FIELD_KEY = "ZGV2LWZpZWxkLWtleS1jaGFuZ2UtbWUtMDEyMzQ1Njc="
DEV_KYC_WEBHOOK_SECRET = "dev-kyc-webhook-secret"  # noqa: S105
DEV_KYC_APP_TOKEN = "sbx:dev-app-token"  # noqa: S105
DEV_KYC_SECRET_KEY = "dev-kyc-secret-key"  # noqa: S105
DEV_MT5_PASSWORD = "Manager#2026"  # noqa: S105
DEV_CTRADER_PASSWORD = "Manager#2026ct"  # noqa: S105
DEV_MATCHTRADER_API_KEY = "mtr-dev-broker-api-key-0123456789abcdef"
DEV_SIRIX_TOKEN = "t1_dev-sirix-simulator-token-0123456789"  # noqa: S105
DEV_MT4_KEY_ID = "fxcrm-dev"
DEV_MT4_SECRET = "mt4-bridge-dev-secret-2026"  # noqa: S105
DEV_PSP_API_KEY = "dev-psp-api-key"
DEV_PSP_WEBHOOK_SECRET = "dev-psp-webhook-secret"  # noqa: S105

DEV_SECRETS = {
    DEV_SECRET_KEY,
    DEV_FIELD_KEY,
    DEV_KYC_WEBHOOK_SECRET,
    DEV_KYC_APP_TOKEN,
    DEV_KYC_SECRET_KEY,
    DEV_MT5_PASSWORD,
    DEV_CTRADER_PASSWORD,
    DEV_MATCHTRADER_API_KEY,
    DEV_SIRIX_TOKEN,
    DEV_MT4_SECRET,
    DEV_PSP_API_KEY,
    DEV_PSP_WEBHOOK_SECRET,
}

ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FXCRM_", env_file=".env", extra="ignore")

    env: Literal["dev", "test", "production"] = "production"
    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{ROOT / 'var' / 'fxcrm.db'}",
        validation_alias="DATABASE_URL",
    )
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "fxcrm"

    secret_key: str = DEV_SECRET_KEY
    # Comma-separated Fernet keys: the first encrypts, all decrypt (rotation).
    field_encryption_keys: str = DEV_FIELD_KEY
    access_token_minutes: int = 60
    # Failed logins: an account is throttled per client address (login_max_failures per window),
    # and for every address together only after login_account_max_failures: one address cannot
    # lock the owner out, and no lock-out outlasts its window (see fxcrm.api.limits).
    login_max_failures: int = 5
    login_account_max_failures: int = 100
    login_lockout_minutes: int = 15

    # Rate limits shared by the API replicas: Redis when set (production), else in memory.
    redis_url: str | None = None
    # Requests per client address (and per signed-in account for writes); 0 turns one off.
    rate_login_per_minute: int = 30
    rate_register_per_hour: int = 20
    rate_writes_per_minute: int = 300
    rate_account_writes_per_minute: int = 120
    # Request bodies above this are refused while they stream in (document uploads: their own).
    max_body_bytes: int = 1024 * 1024

    kyc_base_url: str = "http://127.0.0.1:7111"
    kyc_app_token: str = DEV_KYC_APP_TOKEN
    kyc_secret_key: str = DEV_KYC_SECRET_KEY
    kyc_webhook_secret: str = DEV_KYC_WEBHOOK_SECRET
    kyc_level: str = "basic-kyc-level"

    # Sanctions list sources: directories with the OFAC CSV trio, sdn.xml or UN consolidated.xml files.
    sanctions_paths: str = str(ROOT.parent / "shared" / "data" / "sanctions" / "ofac-sdn-2022-01")

    # Platform credentials: one per platform kind; server rows hold the non-secret settings.
    mt5_manager_password: str = DEV_MT5_PASSWORD
    ctrader_manager_password: str = DEV_CTRADER_PASSWORD
    matchtrader_api_key: str = DEV_MATCHTRADER_API_KEY
    sirix_token: str = DEV_SIRIX_TOKEN
    mt4_bridge_key_id: str = DEV_MT4_KEY_ID
    mt4_bridge_secret: str = DEV_MT4_SECRET
    platform_tls_verify: bool = False

    # Payment service providers this deployment uses, the first being the default: "sim" is
    # fxcrm's PSP simulator (make dev, tests), "stripe" needs the two stripe_* settings.
    psp_providers: str = "sim"
    psp_sim_url: str = "http://127.0.0.1:7110"
    psp_api_key: str = DEV_PSP_API_KEY
    psp_webhook_secret: str = DEV_PSP_WEBHOOK_SECRET
    stripe_api_key: str | None = None
    stripe_webhook_secret: str | None = None

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Processes serving the API (uvicorn workers): one event loop uses one core at most. `make dev`
    # uses up to two when not set (dev_api_workers); production may instead run more replicas.
    api_workers: int = Field(default=1, ge=1, le=64)
    log_json: bool | None = None  # None: JSON unless stdout is a terminal

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_dev(self) -> Settings:
        if self.env == "production":
            used = [
                name
                for name in (
                    "secret_key",
                    "field_encryption_keys",
                    "kyc_webhook_secret",
                    "kyc_app_token",
                    "kyc_secret_key",
                    "mt5_manager_password",
                    "ctrader_manager_password",
                    "matchtrader_api_key",
                    "sirix_token",
                    "mt4_bridge_secret",
                    *(("psp_api_key", "psp_webhook_secret") if "sim" in self.psp_names else ()),
                )
                if any(part in DEV_SECRETS for part in str(getattr(self, name)).split(","))
            ]
            if used:
                raise ValueError(
                    "development secrets are refused outside dev mode; set "
                    + ", ".join(f"FXCRM_{n.upper()}" for n in used)
                )
        return self

    @property
    def psp_names(self) -> list[str]:
        return [name.strip() for name in self.psp_providers.split(",") if name.strip()]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
