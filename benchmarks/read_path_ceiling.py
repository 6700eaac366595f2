"""The ceiling for benchmarks/read_path.py: a minimal FastAPI + SQLAlchemy app that does the same
work as fxcrm's portal reads on the same database, and nothing else.

Per request: verify the bearer token (HS256), look the trader up by primary key (as fxcrm's
principal check does), then the same indexed queries as `GET /portal/me/balances` and
`GET /portal/me/history`, answered as JSON. No middleware, no logging, no pydantic models.

    DATABASE_URL=... uvicorn benchmarks.read_path_ceiling:app --workers 2
"""

from __future__ import annotations

import os
from typing import Any

import jwt
from fastapi import FastAPI, Header, HTTPException
from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from fxcrm.core.db import api_pool_options

SECRET = os.environ["FXCRM_SECRET_KEY"]
# The primary-key lookup of the caller that fxcrm's principal check does on every request; "0"
# leaves it out (to compare with an fxcrm that does not check the subject in the database).
SUBJECT_CHECK = os.environ.get("CEILING_SUBJECT_CHECK", "1") == "1"
# The same pool settings as fxcrm's API, so the two differ by their code, not by their pools.
engine = create_async_engine(
    os.environ["DATABASE_URL"], **api_pool_options(os.environ["DATABASE_URL"])
)
app = FastAPI()

TRADER = text("SELECT id FROM traders WHERE id = :id")
ACCOUNTS = text(
    "SELECT id, kind, code, currency, normal_balance, debits_posted, credits_posted,"
    " debits_pending, credits_pending FROM ledger_accounts"
    " WHERE owner_id = :owner AND kind IN ('client_wallet', 'client_trading')"
    " ORDER BY kind, currency, code"
)
HISTORY = (
    text(
        "SELECT id, created_at, kind, state, phase, debit_account_id, credit_account_id, currency,"
        " amount, reference FROM ledger_transfers"
        " WHERE (debit_account_id IN :ids OR credit_account_id IN :ids)"
        " AND phase IN ('single', 'pending') ORDER BY created_at DESC, id DESC LIMIT :limit"
    )
    .bindparams(bindparam("ids", expanding=True))
    .columns(created_at=DateTime())
)
SCALE = {"USD": 2, "EUR": 2, "JPY": 0}


def _trader_id(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401)
    try:
        claims = jwt.decode(authorization[7:], SECRET, algorithms=["HS256"])
    except jwt.InvalidTokenError:
        raise HTTPException(401) from None
    subject: str = claims["sub"]
    return subject


def _decimal(minor: int, currency: str) -> str:
    scale = SCALE[currency]
    sign, digits = ("-" if minor < 0 else ""), str(abs(minor)).rjust(scale + 1, "0")
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}" if scale else f"{sign}{digits}"


async def _accounts(conn: Any, trader_id: str) -> list[Any]:
    if SUBJECT_CHECK and (await conn.execute(TRADER, {"id": trader_id})).first() is None:
        raise HTTPException(401)
    return list((await conn.execute(ACCOUNTS, {"owner": trader_id})).all())


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/portal/me/balances")
async def balances(authorization: str | None = Header(None)) -> list[dict[str, str]]:
    trader_id = _trader_id(authorization)
    async with engine.connect() as conn:
        rows = await _accounts(conn, trader_id)
    out = []
    for r in rows:
        sign = 1 if r.normal_balance == "credit" else -1
        posted = sign * (r.credits_posted - r.debits_posted)
        held = r.debits_pending if sign == 1 else r.credits_pending
        out.append(
            {
                "account_id": r.id,
                "kind": r.kind,
                "code": r.code,
                "currency": r.currency,
                "balance": _decimal(posted, r.currency),
                "available": _decimal(posted - held, r.currency),
            }
        )
    return out


@app.get("/portal/me/history")
async def history(authorization: str | None = Header(None), limit: int = 50) -> dict[str, Any]:
    trader_id = _trader_id(authorization)
    async with engine.connect() as conn:
        accounts = {r.id for r in await _accounts(conn, trader_id)}
        if not accounts:
            return {"entries": [], "next_cursor": None}
        rows = (await conn.execute(HISTORY, {"ids": list(accounts), "limit": limit + 1})).all()
    entries = []
    for r in rows[:limit]:
        for account_id, sign in ((r.credit_account_id, 1), (r.debit_account_id, -1)):
            if account_id in accounts:
                entries.append(
                    {
                        "transfer_id": r.id,
                        "created_at": r.created_at.isoformat(),
                        "kind": r.kind,
                        "state": r.state,
                        "phase": r.phase,
                        "account_id": account_id,
                        "currency": r.currency,
                        "amount": _decimal(sign * r.amount, r.currency),
                        "reference": r.reference,
                    }
                )
    more = len(rows) > limit
    cursor = f"{rows[limit - 1].created_at.isoformat()}|{rows[limit - 1].id}" if more else None
    return {"entries": entries, "next_cursor": cursor}
