"""Types that cross Temporal for platform sync and back-office account operations."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class SyncState(BaseModel):
    """Carried across continue-as-new.

    Deals: every round reads from the cursor back `tail_overlap_seconds` (deals still in flight at
    the last read), then pauses `interval_seconds`. Every `sweep_every_seconds` a sweep also reads
    back `overlap_seconds` plus the time since the last sweep, so a deal that shows up on the
    platform up to `overlap_seconds` after its close time is still ingested, without re-reading the
    whole overlap every round. Upserts by (server, deal id) make every re-read harmless.
    Accounts are mirrored (and alerts checked) every `accounts_every_seconds`, beside the deals.
    """

    server_id: str
    interval_seconds: float = 5.0
    overlap_seconds: int = 300
    tail_overlap_seconds: int = 10
    sweep_every_seconds: float = 60.0
    accounts_every_seconds: float = 15.0
    batch_limit: int = 20_000
    iterations_before_new_run: int = 200
    deals_ingested: int = 0
    runs: int = 0
    swept_at: datetime | None = None  # workflow time of the last sweep
    accounts_synced_at: datetime | None = None  # workflow time the last account mirror started


class ServerRef(BaseModel):
    server_id: str


class IngestInput(BaseModel):
    server_id: str
    overlap_seconds: int
    max_deals: int  # stop after the window in which this many deals were read
    window_seconds: int = 3600


class IngestResult(BaseModel):
    read: int
    inserted: int
    until: datetime | None
    caught_up: bool


class AccountsSynced(BaseModel):
    accounts: int
    alerts_raised: int
    alerts_cleared: int


class AccountChange(BaseModel):
    """A dealer's change to one trading account; exactly one of the fields is set."""

    server_id: str
    login: int
    leverage: int | None = None
    group: str | None = None
    access: str | None = None  # full | read_only | no_trading | disabled
    actor_id: str
    actor_role: str
    reason: str
    brand_ids: list[str]


class AccountChangeResult(BaseModel):
    server_id: str
    login: int
    group: str
    leverage: int
    access: str
