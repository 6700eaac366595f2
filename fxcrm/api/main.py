"""The FastAPI application: portal, back office, webhooks, audit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from temporalio.client import Client

from fxcrm.adapters.kyc.base import KycProvider
from fxcrm.adapters.psp.registry import PspRegistry, build_psps
from fxcrm.api.docs import install_docs
from fxcrm.api.errors import install_error_handlers
from fxcrm.api.middleware import ProblemForTooLarge, SecurityHeaders, WriteRateLimit
from fxcrm.api.openapi import install_openapi
from fxcrm.api.request_context import RequestContextMiddleware
from fxcrm.api.routes import (
    accounts,
    audit,
    auth,
    backoffice,
    ib_admin,
    ib_deals,
    ib_recalc,
    ib_settlement,
    ledger,
    partner,
    payments,
    portal,
    reconciliation,
    referrals,
    transfers,
    wallets,
    webhooks,
    withdrawals,
)
from fxcrm.core import temporal
from fxcrm.core.config import Settings
from fxcrm.core.db import (
    api_pool_options,
    create_engine,
    read_session_factory,
    session_factory,
)
from fxcrm.core.fields import configure_field_cipher
from fxcrm.core.ratelimit import RateLimiter, build_rate_limiter


def _lazy_temporal(settings: Settings) -> Callable[[], Awaitable[Client]]:
    """Connects on first use, so the API starts even while Temporal is still coming up."""
    client: Client | None = None
    lock = asyncio.Lock()

    async def get() -> Client:
        nonlocal client
        async with lock:
            if client is None:
                client = await temporal.connect(settings)
            return client

    return get


def create_app(
    settings: Settings,
    kyc: KycProvider | None = None,
    temporal_client: Callable[[], Awaitable[Client]] | None = None,
    psps: PspRegistry | None = None,
    limiter: RateLimiter | None = None,
) -> FastAPI:
    configure_field_cipher(settings.field_encryption_keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, **api_pool_options(settings.database_url))
        app.state.sessions = session_factory(engine)
        app.state.read_sessions = read_session_factory(engine)
        owns_kyc = kyc is None
        app.state.kyc = kyc or _sumsub(settings)
        owns_psps = psps is None
        app.state.psps = psps or build_psps(settings)
        yield
        if owns_limiter:
            await app.state.limiter.close()
        if owns_kyc:
            await app.state.kyc.close()
        if owns_psps:
            await app.state.psps.close()
        await engine.dispose()

    # The docs pages are our own (fxcrm.api.docs): FastAPI's load their assets from a CDN.
    app = FastAPI(title="fxcrm", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_docs(app)
    app.state.settings = settings
    owns_limiter = limiter is None
    app.state.limiter = limiter or build_rate_limiter(settings.redis_url)
    app.state.temporal = temporal_client or _lazy_temporal(settings)
    install_error_handlers(app)
    install_openapi(app)

    app.add_middleware(RequestContextMiddleware)

    # The last added is the outermost: security headers on every answer (429 and 413 too), 413s
    # as problem details, the write rate limit, then the body limit, which refuses a body as it
    # streams in, before it is buffered or spooled to disk (the document upload declares its own,
    # larger limit: its route's max_body_size).
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=settings.max_body_bytes)
    app.add_middleware(WriteRateLimit)
    app.add_middleware(ProblemForTooLarge)
    app.add_middleware(SecurityHeaders)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    for module in (
        auth,
        portal,
        wallets,
        payments,
        backoffice,
        accounts,
        ledger,
        webhooks,
        audit,
        transfers,
        withdrawals,
        reconciliation,
        ib_settlement,  # before ib_admin: /backoffice/ib/settlements, not /ib/{ib_id}
        ib_recalc,  # before ib_admin too: /backoffice/ib/recalculations/...
        ib_deals,  # and /backoffice/ib/deals/...
        ib_admin,
        partner,
        referrals,
    ):
        app.include_router(module.router)
    return app


def _sumsub(settings: Settings) -> KycProvider:
    from fxcrm.adapters.kyc.sumsub import SumsubClient

    return SumsubClient(
        base_url=settings.kyc_base_url,
        app_token=settings.kyc_app_token,
        secret_key=settings.kyc_secret_key,
        webhook_secret=settings.kyc_webhook_secret,
    )
