"""The deployment names its payment providers; nothing else exists, the first is the default."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fxcrm.adapters.psp.registry import UnknownProvider, build_psps
from fxcrm.core.config import Settings


async def test_dev_has_the_simulator_only() -> None:
    psps = build_psps(Settings(env="test"))
    assert psps.names == ["sim"] and psps.get().provider == "sim"
    with pytest.raises(UnknownProvider):
        psps.get("stripe")
    await psps.close()


async def test_stripe_first_is_the_default() -> None:
    settings = Settings(
        env="test",
        psp_providers="stripe,sim",
        stripe_api_key="sk_test_x",
        stripe_webhook_secret="whsec_x",
    )
    psps = build_psps(settings)
    assert psps.default == "stripe" and psps.names == ["sim", "stripe"]
    await psps.close()


def test_stripe_without_keys_and_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="STRIPE"):
        build_psps(Settings(env="test", psp_providers="stripe"))
    with pytest.raises(ValueError, match="unknown payment provider"):
        build_psps(Settings(env="test", psp_providers="paypal"))


def test_production_refuses_the_simulator_with_dev_secrets() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(env="production", psp_providers="sim")
    assert "FXCRM_PSP_WEBHOOK_SECRET" in str(refused.value)
