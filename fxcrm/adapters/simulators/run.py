"""Runs one simulator on its default port for `fxcrm simulator` and `make dev`."""

from __future__ import annotations

import asyncio

from fxcrm.core.config import ROOT, Settings

MT5_PORT = 7101
KYC_PORT = 7111
PSP_PORT = 7110
# Platform simulators other than MT5: (module with main(argv), default port).
PLATFORM_SIMULATORS = {
    "ctrader": ("fxcrm.adapters.simulators.ctrader.serve", 7102),
    "matchtrader": ("fxcrm.adapters.simulators.matchtrader.serve", 7103),
    "sirix": ("fxcrm.adapters.simulators.sirix.serve", 7104),
    "mt4": ("fxcrm.adapters.simulators.mt4.serve", 7105),
}


def run_simulator(kind: str, port: int | None, settings: Settings) -> None:
    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    if kind == "platforms":
        from fxcrm.adapters.simulators.host import run_platform_simulators

        asyncio.run(run_platform_simulators(var))
    elif kind == "mt5":
        from fxcrm.adapters.simulators.mt5.serve import main

        main(
            [
                "--port",
                str(port or MT5_PORT),
                "--cert-dir",
                str(var / "certs"),
                "--state-file",
                str(var / "mt5-simulator.json"),
            ]
        )
    elif kind in PLATFORM_SIMULATORS:
        import importlib

        module, default_port = PLATFORM_SIMULATORS[kind]
        serve = importlib.import_module(module)
        serve.main(
            [
                "--port",
                str(port or default_port),
                "--state-file",
                str(var / f"{kind}-simulator.json"),
            ]
        )
    elif kind == "kyc":
        from fxcrm.adapters.simulators.kyc import KycSimConfig, run_kyc_simulator

        config = KycSimConfig(
            app_token=settings.kyc_app_token,
            secret_key=settings.kyc_secret_key,
            webhook_secret=settings.kyc_webhook_secret,
            webhook_url=f"http://{settings.api_host}:{settings.api_port}/webhooks/kyc/sumsub",
            review_delay_seconds=2.0,
        )
        asyncio.run(run_kyc_simulator("127.0.0.1", port or KYC_PORT, config))
    elif kind == "psp":
        from fxcrm.adapters.simulators.psp import PspSimConfig, run_psp_simulator

        psp = PspSimConfig(
            api_key=settings.psp_api_key,
            webhook_secret=settings.psp_webhook_secret,
            webhook_url=f"http://{settings.api_host}:{settings.api_port}/webhooks/psp/sim",
        )
        asyncio.run(run_psp_simulator("127.0.0.1", port or PSP_PORT, psp))
    else:
        raise ValueError(f"unknown simulator {kind}")
