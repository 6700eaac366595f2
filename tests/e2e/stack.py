"""The whole of fxcrm in one test process: API, worker, Temporal dev server, MT5 and KYC simulators.

Only the Temporal dev server is a separate process (the real `temporal` CLI); the API and the
simulators listen on real loopback ports, so webhooks and MT5 sessions cross real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from fxcrm.activities.screening import ScreeningService
from fxcrm.adapters.kyc.sumsub import SumsubClient
from fxcrm.adapters.platforms.registry import PlatformRegistry
from fxcrm.adapters.psp.registry import build_psps
from fxcrm.adapters.simulators.kyc import KycSimConfig, create_kyc_simulator, serving
from fxcrm.adapters.simulators.mt5 import Mt5SimulatorThread
from fxcrm.adapters.simulators.psp import PspSimConfig, create_psp_simulator
from fxcrm.api.main import create_app
from fxcrm.core.config import Settings
from fxcrm.core.db import create_engine, session_factory
from fxcrm.models import PlatformServer
from fxcrm.seed import DEMO_SERVER, seed_demo
from fxcrm.worker import build_worker, platform_factory

ROOT = Path(__file__).resolve().parents[2]
# A committed extract of the real OFAC SDN list (CSV trio).
SANCTIONS_LIST = Path(__file__).resolve().parents[1] / "fixtures" / "sanctions" / "ofac-sdn-extract"


@dataclass
class Stack:
    settings: Settings
    api_url: str
    kyc_url: str
    client: Client
    sessions: async_sessionmaker[AsyncSession]
    mt5: Mt5SimulatorThread
    http: httpx.AsyncClient
    psp_url: str  # the PSP simulator; its /_sim/ endpoints drive payments and inject faults


def stack_settings(
    database_url: str, temporal_address: str, kyc_url: str, api_port: int
) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        temporal_address=temporal_address,
        task_queue=f"fxcrm-e2e-{uuid.uuid4().hex[:8]}",
        kyc_base_url=kyc_url,
        api_port=api_port,
        sanctions_paths=str(SANCTIONS_LIST),
        # Every test client is 127.0.0.1: per-address volume limits would throttle the suite.
        # The failed-login throttle per account and address stays on (tests/api test it).
        rate_login_per_minute=0,
        rate_register_per_hour=0,
        rate_writes_per_minute=0,
        rate_account_writes_per_minute=0,
    )


@contextlib.asynccontextmanager
async def running_stack(
    database_url: str,
    temporal: Client,
    mt5: Mt5SimulatorThread,
    cafile: Path,
    in_process_worker: bool = True,
) -> AsyncIterator[Stack]:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    await seed_demo(sessions, mt5_url=mt5.base_url)
    async with sessions() as session, session.begin():
        # The seed is idempotent: point the demo server at this run's simulator.
        await session.execute(
            update(PlatformServer)
            .where(PlatformServer.id == DEMO_SERVER)
            .values(base_url=mt5.base_url)
        )
    target = temporal.service_client.config.target_host
    # The API first (the KYC simulator needs its URL), then the KYC simulator.
    base = stack_settings(database_url, target, "http://unused", 0)
    kyc_for_api = SumsubClient(
        base_url="http://unused",
        app_token=base.kyc_app_token,
        secret_key=base.kyc_secret_key,
        webhook_secret=base.kyc_webhook_secret,
    )

    async def temporal_client() -> Client:
        return temporal

    # The API only verifies PSP webhooks (the secret); workflows call the PSP through the worker.
    psps_for_api = build_psps(base)
    api = create_app(base, kyc=kyc_for_api, temporal_client=temporal_client, psps=psps_for_api)
    async with serving(api) as api_url:  # type: ignore[arg-type]
        kyc_app = create_kyc_simulator(
            KycSimConfig(webhook_url=f"{api_url}/webhooks/kyc/sumsub", review_delay_seconds=0.2)
        )
        psp_app = create_psp_simulator(
            PspSimConfig(
                webhook_url=f"{api_url}/webhooks/psp/sim",
                confirmation_interval_seconds=0.1,
                local_delay_seconds=0.2,
                payout_delay_seconds=0.2,
            )
        )
        async with serving(kyc_app) as kyc_url, serving(psp_app) as psp_url:
            settings = base.model_copy(
                update={
                    "kyc_base_url": kyc_url,
                    "platform_tls_verify": False,
                    "psp_sim_url": psp_url,
                }
            )
            kyc = SumsubClient(
                base_url=kyc_url,
                app_token=settings.kyc_app_token,
                secret_key=settings.kyc_secret_key,
                webhook_secret=settings.kyc_webhook_secret,
            )
            platforms = PlatformRegistry(platform_factory(sessions, settings))
            psps = build_psps(settings)
            screening = ScreeningService.from_paths(
                [Path(p) for p in settings.sanctions_paths.split(",")]
            )
            await screening.screener()
            worker: Worker | None = None
            if in_process_worker:
                worker = build_worker(
                    temporal, settings, sessions, kyc, platforms, screening, psps=psps
                )
            async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
                stack = Stack(settings, api_url, kyc_url, temporal, sessions, mt5, http, psp_url)
                if worker is None:
                    yield stack
                else:
                    async with worker:
                        yield stack
            await platforms.close()
            await psps.close()
            await kyc.close()
    await psps_for_api.close()
    await kyc_for_api.close()
    await engine.dispose()


def start_worker(stack: Stack, log: Path) -> subprocess.Popen[bytes]:
    """The worker as a process of its own (`fxcrm.cli worker`) on this stack's database, Temporal,
    task queue and simulators, appending its output to `log`: a test can SIGKILL it. Use it with a
    stack started with `in_process_worker=False` (the `stack_without_worker` fixture)."""
    env = {
        **os.environ,
        "FXCRM_ENV": "test",
        "DATABASE_URL": stack.settings.database_url,
        "FXCRM_TEMPORAL_ADDRESS": stack.settings.temporal_address,
        "FXCRM_TASK_QUEUE": stack.settings.task_queue,
        "FXCRM_KYC_BASE_URL": stack.kyc_url,
        "FXCRM_PSP_SIM_URL": stack.psp_url,
        "FXCRM_SANCTIONS_PATHS": stack.settings.sanctions_paths,
        "FXCRM_LOG_JSON": "true",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "fxcrm.cli", "worker"],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def eventually(check, within: float = 30.0, interval: float = 0.2):  # type: ignore[no-untyped-def]
    """Polls `check()` (async) until it returns a truthy value."""
    deadline = asyncio.get_running_loop().time() + within
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within}s (last: {last!r})")
