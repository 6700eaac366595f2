"""Client risk categorization (low, medium, high) with the reasons that produced it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from fxcrm.domain.brand import BrandConfig

_ORDER = {"low": 0, "medium": 1, "high": 2}


class RiskAssessment(BaseModel):
    category: str
    reasons: list[str]


class AppropriatenessResult(BaseModel):
    passed: bool
    score: int
    reasons: list[str]


class Questionnaire(BaseModel):
    """The appropriateness questionnaire (MiFID II Art. 25(3)); required for a Pro account."""

    # Bounded: a negative count or one past a lifetime is a typo, not an answer.
    trading_experience_years: int = Field(ge=0, le=100)
    leveraged_trades_last_year: int = Field(ge=0, le=1_000_000)
    understands_leverage_risk: bool
    relevant_professional_experience: bool
    portfolio_over_500k_eur: bool


def assess_appropriateness(answers: Questionnaire) -> AppropriatenessResult:
    # Elective professional criteria (MiFID II Annex II): two of three quantitative tests.
    reasons: list[str] = []
    criteria = 0
    if answers.leveraged_trades_last_year >= 40:
        criteria += 1
        reasons.append("traded in significant size: >= 40 leveraged trades in the last year")
    if answers.portfolio_over_500k_eur:
        criteria += 1
        reasons.append("portfolio over EUR 500,000")
    if answers.relevant_professional_experience:
        criteria += 1
        reasons.append("at least one year of relevant professional experience")
    if not answers.understands_leverage_risk:
        reasons.append("does not confirm understanding of leverage risk")
        return AppropriatenessResult(passed=False, score=criteria, reasons=reasons)
    passed = criteria >= 2
    if not passed:
        reasons.append("fewer than two of the three professional criteria are met")
    return AppropriatenessResult(passed=passed, score=criteria, reasons=reasons)


def categorize(
    *,
    country: str,
    screening_decision: str,
    top_score: float,
    is_pep: bool,
    account_type: str,
    appropriateness: AppropriatenessResult | None,
    duplicate_identity: bool,
    brand: BrandConfig,
) -> RiskAssessment:
    """Highest category any rule gives wins; every rule that fired is a reason."""
    category = "low"
    reasons: list[str] = []

    def raise_to(level: str, reason: str) -> None:
        nonlocal category
        if _ORDER[level] > _ORDER[category]:
            category = level
        reasons.append(f"{level}: {reason}")

    if country in brand.high_risk_countries:
        raise_to("high", f"country {country} is on the brand's high-risk list")
    elif country in brand.medium_risk_countries:
        raise_to("medium", f"country {country} is on the brand's medium-risk list")
    if is_pep:
        raise_to("high", "politically exposed person: enhanced due diligence")
    if screening_decision == "possible":
        raise_to("high", f"possible sanctions match (score {top_score:.2f}) cleared by compliance")
    elif top_score >= 0.5:
        raise_to("medium", f"weak sanctions name similarity recorded (score {top_score:.2f})")
    if duplicate_identity:
        raise_to("high", "identity document already used by another client")
    if account_type == "pro" and appropriateness is not None and appropriateness.passed:
        raise_to("medium", "professional client: higher leverage allowed")
    if not reasons:
        reasons.append("low: no risk factor found")
    return RiskAssessment(category=category, reasons=reasons)
