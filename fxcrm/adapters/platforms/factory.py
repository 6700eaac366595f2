"""Builds the gateway for a platform server: its row holds the URL and settings, secrets come from
the environment."""

from __future__ import annotations

from typing import Any

from fxcrm.adapters.platforms.base import TradingPlatformGateway
from fxcrm.core.config import Settings

PLATFORMS = ("mt5", "mt4", "ctrader", "matchtrader", "sirix")


def build_gateway(
    platform: str, base_url: str, config: dict[str, Any], settings: Settings
) -> TradingPlatformGateway:
    verify = settings.platform_tls_verify
    if platform == "mt5":
        from fxcrm.adapters.platforms.mt5 import Mt5WebApiClient

        return Mt5WebApiClient(
            base_url=base_url,
            manager_login=int(config["manager_login"]),
            password=settings.mt5_manager_password,
            server_utc_offset_hours=float(config.get("server_utc_offset_hours", 0)),
            verify=verify,
        )
    if platform == "mt4":
        from fxcrm.adapters.platforms.mt4 import Mt4BridgeClient

        return Mt4BridgeClient(
            base_url, settings.mt4_bridge_key_id, settings.mt4_bridge_secret, verify=verify
        )
    if platform == "ctrader":
        from fxcrm.adapters.platforms.ctrader import CTraderWebServicesClient

        return CTraderWebServicesClient(
            base_url,
            int(config["manager_login"]),
            settings.ctrader_manager_password,
            broker_name=str(config["broker_name"]),
            verify=verify,
        )
    if platform == "matchtrader":
        from fxcrm.adapters.platforms.matchtrader import MatchTraderClient

        return MatchTraderClient(
            base_url,
            settings.matchtrader_api_key,
            system_uuid=config.get("system_uuid"),
            verify=verify,
        )
    if platform == "sirix":
        from fxcrm.adapters.platforms.sirix import SirixClient

        return SirixClient(base_url, settings.sirix_token, verify=verify)
    raise LookupError(f"no adapter for platform {platform!r}")
