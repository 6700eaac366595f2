"""A brand's configuration: where accounts are opened, in which group and leverage, and country rules."""

from __future__ import annotations

from pydantic import BaseModel, Field

from fxcrm.domain.alerts import AlertThresholds
from fxcrm.domain.ib.settings import IbRules
from fxcrm.domain.payments import PaymentRules

RISK_CATEGORIES = ("low", "medium", "high")
ACCOUNT_TYPES = ("retail", "pro", "vip")


class GroupChoice(BaseModel):
    group: str
    leverage: int = Field(gt=0, le=3000)


class AccountTypeGroups(BaseModel):
    low: GroupChoice
    medium: GroupChoice
    high: GroupChoice

    def for_risk(self, risk: str) -> GroupChoice:
        choice: GroupChoice = getattr(self, risk)
        return choice


class BrandConfig(BaseModel):
    platform_server: str
    currency: str = "USD"
    account_groups: dict[str, AccountTypeGroups]
    # Registration refused outright (comprehensive sanctions, not served by the licence).
    blocked_countries: list[str] = Field(default_factory=list)
    # FATF grey list and similar: raise the risk category.
    high_risk_countries: list[str] = Field(default_factory=list)
    medium_risk_countries: list[str] = Field(default_factory=list)
    minimum_age: int = 18
    # Dealing-desk alerts: the brand's default, and overrides for named groups.
    alert_thresholds: AlertThresholds = Field(default_factory=AlertThresholds)
    group_alert_thresholds: dict[str, AlertThresholds] = Field(default_factory=dict)
    payments: PaymentRules = Field(default_factory=PaymentRules)
    ib: IbRules = Field(default_factory=IbRules)

    def thresholds_for(self, group: str) -> AlertThresholds:
        return self.group_alert_thresholds.get(group, self.alert_thresholds)

    def group_for(self, account_type: str, risk: str) -> GroupChoice:
        return self.account_groups[account_type].for_risk(risk)


def demo_brand_config(server_id: str) -> BrandConfig:
    """The demo seed's configuration, matching the MT5 simulator's groups."""

    def groups(prefix: str, leverages: tuple[int, int, int]) -> AccountTypeGroups:
        low, medium, high = leverages
        return AccountTypeGroups(
            low=GroupChoice(group=f"real\\{prefix}\\std", leverage=low),
            medium=GroupChoice(group=f"real\\{prefix}\\std", leverage=medium),
            high=GroupChoice(group=f"real\\{prefix}\\highrisk", leverage=high),
        )

    return BrandConfig(
        platform_server=server_id,
        account_groups={
            "retail": groups("retail", (30, 30, 10)),
            "pro": groups("pro", (200, 100, 30)),
            "vip": groups("pro", (500, 200, 50)),
        },
        blocked_countries=["KP", "IR", "CU", "SY", "US"],
        high_risk_countries=["AF", "MM", "YE", "HT", "SS", "VE", "RU", "BY"],
        medium_risk_countries=["AE", "NG", "PK", "PH", "TR", "VN", "ZA"],
    )
