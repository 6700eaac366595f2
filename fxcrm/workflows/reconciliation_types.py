"""Pydantic types that cross Temporal for PSP reconciliation: input, report, result."""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel

from fxcrm.adapters.psp.base import SettlementLine


def reconciliation_workflow_id(psp: str, day: date) -> str:
    return f"psp-reconciliation-{psp}-{day.isoformat()}"


def reconciliation_schedule_id(psp: str) -> str:
    return f"psp-reconciliation-{psp}"


class ReconciliationInput(BaseModel):
    psp: str
    day: date  # UTC
    requested_by: str | None = None  # staff id for an on-demand run; None: the schedule


class ScheduledReconciliation(BaseModel):
    """What the daily schedule passes: the day is computed from the scheduled time."""

    psp: str
    days_back: int = 1  # reconcile yesterday: the PSP's day is closed by then


class ReportRequest(BaseModel):
    psp: str
    day: date


class SettlementReport(BaseModel):
    psp: str
    day: date
    lines: list[SettlementLine]


class ReconcileInput(BaseModel):
    psp: str
    day: date
    report: SettlementReport
    nearby: list[SettlementLine]  # the day before and after: for payments near midnight
    tolerance_seconds: int = int(timedelta(hours=2).total_seconds())


class ReconciliationResult(BaseModel):
    run_id: str
    psp: str
    day: date
    status: str  # clean | breaks
    lines: int
    matched: int
    breaks: int  # open breaks of this run after the run
    fees_booked: int  # fee postings made now (0 on a re-run)
