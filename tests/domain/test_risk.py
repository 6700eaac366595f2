"""Risk categorization and the appropriateness test."""

from __future__ import annotations

from fxcrm.domain.brand import demo_brand_config
from fxcrm.domain.risk import Questionnaire, assess_appropriateness, categorize

BRAND = demo_brand_config("mt5-demo")


def _risk(**overrides: object) -> tuple[str, list[str]]:
    args: dict[str, object] = dict(
        country="DE",
        screening_decision="clear",
        top_score=0.1,
        is_pep=False,
        account_type="retail",
        appropriateness=None,
        duplicate_identity=False,
        brand=BRAND,
    )
    args.update(overrides)
    result = categorize(**args)  # type: ignore[arg-type]
    return result.category, result.reasons


def test_clean_client_is_low() -> None:
    category, reasons = _risk()
    assert category == "low"
    assert reasons == ["low: no risk factor found"]


def test_country_lists() -> None:
    assert _risk(country="NG")[0] == "medium"
    assert _risk(country="RU")[0] == "high"


def test_pep_and_cleared_possible_match_are_high() -> None:
    assert _risk(is_pep=True)[0] == "high"
    category, reasons = _risk(screening_decision="possible", top_score=0.82)
    assert category == "high"
    assert any("0.82" in r for r in reasons)


def test_highest_rule_wins_and_every_reason_is_kept() -> None:
    category, reasons = _risk(country="NG", duplicate_identity=True)
    assert category == "high"
    assert len(reasons) == 2


def _answers(**overrides: object) -> Questionnaire:
    base = dict(
        trading_experience_years=5,
        leveraged_trades_last_year=60,
        understands_leverage_risk=True,
        relevant_professional_experience=True,
        portfolio_over_500k_eur=False,
    )
    base.update(overrides)
    return Questionnaire.model_validate(base)


def test_appropriateness_needs_two_of_three_criteria() -> None:
    assert assess_appropriateness(_answers()).passed
    assert not assess_appropriateness(_answers(relevant_professional_experience=False)).passed


def test_appropriateness_fails_without_leverage_understanding() -> None:
    result = assess_appropriateness(
        _answers(understands_leverage_risk=False, portfolio_over_500k_eur=True)
    )
    assert not result.passed
    assert any("leverage risk" in r for r in result.reasons)


def test_group_for_account_type_and_risk() -> None:
    assert BRAND.group_for("retail", "high").group == "real\\retail\\highrisk"
    assert BRAND.group_for("pro", "low").leverage == 200
