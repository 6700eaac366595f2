"""The payment providers one process talks to, by name ("sim", "stripe"), built from settings."""

from __future__ import annotations

from fxcrm.adapters.psp.base import PaymentProvider
from fxcrm.core.config import Settings


class UnknownProvider(LookupError):
    pass


class PspRegistry:
    def __init__(self, providers: dict[str, PaymentProvider], default: str) -> None:
        if default not in providers:
            raise ValueError(f"default provider {default!r} is not configured")
        self._providers = providers
        self.default = default

    def get(self, name: str | None = None) -> PaymentProvider:
        try:
            return self._providers[name or self.default]
        except KeyError:
            raise UnknownProvider(f"payment provider {name!r} is not configured") from None

    @property
    def names(self) -> list[str]:
        return sorted(self._providers)

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()


def build_psps(settings: Settings) -> PspRegistry:
    from fxcrm.adapters.psp.simulator_client import SimPspClient

    providers: dict[str, PaymentProvider] = {
        "sim": SimPspClient(
            base_url=settings.psp_sim_url,
            api_key=settings.psp_api_key,
            webhook_secret=settings.psp_webhook_secret,
        )
    }
    if settings.stripe_api_key and settings.stripe_webhook_secret:
        from fxcrm.adapters.psp.stripe import StripeClient

        providers["stripe"] = StripeClient(
            api_key=settings.stripe_api_key, webhook_secret=settings.stripe_webhook_secret
        )
    return PspRegistry(providers, default="sim")
