"""Sanctions/PEP name screening: normalization, candidate index, scorer and screener (pure)."""

from fxcrm.domain.screening.model import (
    AlignedPart,
    BirthDate,
    Identifier,
    ListEntity,
    ListName,
    MatchResult,
    QualifierAdjustment,
    ScreeningOutcome,
    ScreeningSubject,
)
from fxcrm.domain.screening.screener import (
    POSSIBLE_THRESHOLD,
    RECORD_THRESHOLD,
    STRONG_THRESHOLD,
    Screener,
)

__all__ = [
    "POSSIBLE_THRESHOLD",
    "RECORD_THRESHOLD",
    "STRONG_THRESHOLD",
    "AlignedPart",
    "BirthDate",
    "Identifier",
    "ListEntity",
    "ListName",
    "MatchResult",
    "QualifierAdjustment",
    "Screener",
    "ScreeningOutcome",
    "ScreeningSubject",
]
