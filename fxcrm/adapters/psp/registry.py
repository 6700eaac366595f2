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
    """Only the providers the deployment names exist: a production API has no simulator whose
    (public) development secret could sign a webhook."""
    providers: dict[str, PaymentProvider] = {}
    for name in settings.psp_names:
        if name == "sim":
            from fxcrm.adapters.psp.simulator_client import SimPspClient

            providers[name] = SimPspClient(
                base_url=settings.psp_sim_url,
                api_key=settings.psp_api_key,
                webhook_secret=settings.psp_webhook_secret,
            )
        elif name == "stripe":
            if not (settings.stripe_api_key and settings.stripe_webhook_secret):
                raise ValueError(
                    "stripe needs FXCRM_STRIPE_API_KEY and FXCRM_STRIPE_WEBHOOK_SECRET"
                )
            from fxcrm.adapters.psp.stripe import StripeClient

            providers[name] = StripeClient(
                api_key=settings.stripe_api_key, webhook_secret=settings.stripe_webhook_secret
            )
        else:
            raise ValueError(f"unknown payment provider {name!r} in FXCRM_PSP_PROVIDERS")
    if not providers:
        raise ValueError("FXCRM_PSP_PROVIDERS names no payment provider")
    return PspRegistry(providers, default=settings.psp_names[0])
