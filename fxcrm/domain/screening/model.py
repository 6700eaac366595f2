"""Screening data model: list entities, the subject being screened, and the explained result.

Everything here is a pydantic v2 model so match evidence can travel in Temporal payloads and be
stored as JSON. Scores are floats in [0, 1] (a ranking signal, not money).
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EntitySchema = Literal["person", "organization", "vessel", "aircraft"]
SubjectKind = Literal["person", "organization"]
Gender = Literal["male", "female"]
Decision = Literal["clear", "possible", "strong"]
Band = Literal["strong", "possible", "recorded"]
NameKind = Literal["name", "alias", "previous_name", "weak_alias", "identifier"]


class ListName(BaseModel):
    """A name as listed. Persons keep given/family apart when the source separates them."""

    model_config = ConfigDict(frozen=True)

    full: str
    given: str | None = None
    family: str | None = None


class BirthDate(BaseModel):
    """A date of birth as a prefix ("1952", "1952-10", "1952-10-07") plus the source text."""

    model_config = ConfigDict(frozen=True)

    prefix: str
    raw: str
    approximate: bool = False  # "circa 1960"


class Identifier(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str  # "passport", "national_id", ...
    number: str
    country: str | None = None


class ListEntity(BaseModel):
    """One listed party in a FollowTheMoney-like shape, independent of the source format."""

    model_config = ConfigDict(frozen=True, validate_by_name=True, serialize_by_alias=True)

    entity_id: str  # f"{source}:{source_id}", stable across list versions
    source: str  # "ofac-sdn", "un-sc"
    source_id: str
    # Aliased: a field called `schema` would shadow BaseModel.schema(); JSON still says "schema".
    schema_: EntitySchema = Field(alias="schema")
    names: list[ListName]  # names[0] is the primary name; the rest are strong aliases
    weak_aliases: list[ListName] = Field(default_factory=list)  # matched exactly only
    previous_names: list[ListName] = Field(default_factory=list)  # f.k.a.
    birth_dates: list[BirthDate] = Field(default_factory=list)
    nationalities: list[str] = Field(default_factory=list)  # ISO2, or the raw name if unknown
    countries: list[str] = Field(default_factory=list)  # addresses, place of birth
    gender: Gender | None = None
    identifiers: list[Identifier] = Field(default_factory=list)
    programs: list[str] = Field(default_factory=list)
    raw_hash: str  # hash of the source record: drives delta re-screening and dismissal memory

    @property
    def caption(self) -> str:
        return self.names[0].full if self.names else self.entity_id


class ScreeningSubject(BaseModel):
    """A client (or payee) to screen. Persons give name parts; organisations give `full_name`."""

    model_config = ConfigDict(frozen=True)

    first_name: str = ""
    last_name: str = ""
    middle_name: str | None = None
    full_name: str | None = None  # organisation name, or a person name not split into parts
    extra_names: list[str] = Field(default_factory=list)  # former names, name as on the document
    date_of_birth: date | None = None
    country: str | None = None  # ISO2
    nationalities: list[str] = Field(default_factory=list)  # ISO2
    gender: Gender | None = None
    id_numbers: list[str] = Field(default_factory=list)  # passport / national id numbers
    kind: SubjectKind = "person"
    reference: str | None = None  # caller's id (client id), echoed in the outcome


class AlignedPart(BaseModel):
    """One aligned (or unmatched) name part and what it contributed."""

    query_part: str | None
    list_part: str | None
    score: float
    weight: float


class QualifierAdjustment(BaseModel):
    # "dob_day_match", "dob_year_match", "dob_year_disjoint", "dob_day_disjoint",
    # "dob_day_month_flip", "nationality_mismatch", "country_mismatch", "gender_mismatch", ...
    name: str
    delta: float  # added to the name score: positive for agreeing evidence, negative against
    detail: str


class MatchResult(BaseModel):
    """One candidate entity with the evidence behind its score."""

    entity_id: str
    entity_raw_hash: str
    caption: str
    entity_schema: EntitySchema
    programs: list[str]
    score: float
    band: Band
    name_score: float
    matched_name_kind: NameKind
    matched_query_name: str
    matched_list_name: str
    parts: list[AlignedPart]
    qualifiers: list[QualifierAdjustment]
    list_version: str


class ScreeningOutcome(BaseModel):
    decision: Decision
    top_score: float
    matches: list[MatchResult]  # every match >= RECORD_THRESHOLD, best first
    list_version: str
    reference: str | None = None
    candidates: int = 0  # entities scored in stage 2
