"""Fixtures: the PSP simulator on a real loopback port, a webhook receiver, and a client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from fxcrm.adapters.psp.simulator_client import SimPspClient
from fxcrm.adapters.simulators.psp import PspSimConfig, PspSimulator, create_psp_simulator, serving

API_KEY = "test-psp-api-key"
WEBHOOK_SECRET = "test-psp-webhook-secret"
HOOK_PATH = "/webhooks/psp/sim"


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """Stands in for fxcrm's webhook route: records what arrives; fails on request."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    fail_next: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post(HOOK_PATH)
        async def hook(request: Request) -> Response:
            if self.fail_next > 0:
                self.fail_next -= 1
                return Response(status_code=503)
            self.deliveries.append(Delivery(dict(request.headers), await request.body()))
            return Response(status_code=200)

        return app

    def of(self, provider_ref: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.event["data"]["id"] == provider_ref]

    def types(self, provider_ref: str) -> list[str]:
        return [d.event["type"] for d in self.of(provider_ref)]


@dataclass
class Sim:
    url: str
    state: PspSimulator


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with serving(receiver.app()) as url:
        receiver.url = url
        yield receiver


@pytest.fixture(scope="module")
async def sim_server(receiver: Receiver) -> AsyncIterator[Sim]:
    config = PspSimConfig(
        api_key=API_KEY,
        webhook_secret=WEBHOOK_SECRET,
        webhook_url=receiver.url + HOOK_PATH,
        crypto_confirmations=3,
        confirmation_interval_seconds=0.01,
        local_delay_seconds=0.05,
        payout_delay_seconds=0.05,
        out_of_order_hold_seconds=0.1,
        webhook_backoff_seconds=0.01,
        timeout_fault_seconds=1.0,
    )
    app = create_psp_simulator(config)
    async with serving(app) as url:
        yield Sim(url, app.state.simulator)


@pytest.fixture
def sim(sim_server: Sim, receiver: Receiver) -> Sim:
    sim_server.state.reset()
    receiver.deliveries.clear()
    receiver.fail_next = 0
    return sim_server


@pytest.fixture
async def client(sim: Sim) -> AsyncIterator[SimPspClient]:
    # Patient enough for a busy CI machine; the timeout test uses `impatient` instead.
    psp = SimPspClient(sim.url, API_KEY, WEBHOOK_SECRET, timeout=5.0)
    yield psp
    await psp.close()


@pytest.fixture
async def impatient(sim: Sim) -> AsyncIterator[SimPspClient]:
    """Gives up well before the simulator's timeout fault (1 s) answers."""
    psp = SimPspClient(sim.url, API_KEY, WEBHOOK_SECRET, timeout=0.5)
    yield psp
    await psp.close()


@pytest.fixture
async def control(sim: Sim) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        yield http


async def eventually(check: Callable[[], bool], within: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
