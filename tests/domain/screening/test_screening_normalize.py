"""Name normalization: folding, transliteration, tokens, honorifics, particles and legal forms."""

from __future__ import annotations

from fxcrm.domain.screening.normalize import (
    NamePart,
    PartKind,
    fold,
    join_hyphens,
    name_key,
    org_parts,
    person_parts,
    tokenize,
)


def texts(parts: tuple[NamePart, ...]) -> list[str]:
    return [p.text for p in parts]


def test_fold_nfkc_casefold_and_transliteration() -> None:
    assert fold("Сергей") == "sergey"
    assert fold("Müller") == "muller"
    assert fold("\uff2d\uff21\uff32\uff29\uff21") == "maria"  # full-width "MARIA" via NFKC
    assert fold("Straße") == "strasse"
    assert fold("Ñúñez") == "nunez"


def test_tokenize_splits_punctuation_joins_apostrophes_and_abbreviations() -> None:
    assert tokenize("AL-ZAWAHIRI, Dr. Ayman") == ["al", "zawahiri", "dr", "ayman"]
    assert tokenize("O'Brien") == tokenize("OBrien") == ["obrien"]
    assert tokenize("GAMA'AT") == ["gamaat"]
    assert tokenize("AL AMANA S.A.R.L.") == ["al", "amana", "sarl"]


def test_person_prefixes_removed_only_at_the_start() -> None:
    assert texts(person_parts("Dr. Ayman", "AL ZAWAHIRI")) == ["ayman", "al", "zawahiri"]
    assert texts(person_parts("Shaykh Umar Abd", "AL RAHMAN")) == ["umar", "abd", "al", "rahman"]
    # A lone title is kept: there would be nothing left to compare.
    assert texts(person_parts("General", None)) == ["general"]


def test_particles_are_tagged_and_family_parts_flagged() -> None:
    parts = person_parts("Ayman", "AL-ZAWAHIRI")
    assert parts == (
        NamePart("ayman", PartKind.NAME, family=False),
        NamePart("al", PartKind.STOP, family=True),
        NamePart("zawahiri", PartKind.NAME, family=True),
    )


def test_org_legal_forms_are_canonical() -> None:
    russian = org_parts("OBSHCESTVO S OGRANICHENNOI OTVETSTVENNOSTYU KARST")
    assert (
        name_key(russian) == name_key(org_parts("KARST, OOO")) == name_key(org_parts("Karst LLC"))
    )
    assert name_key(org_parts("AO KONTSERN OKEANPRIBOR")) == name_key(
        org_parts("AKTSIONERNOE OBSHCHESTVO KONTSERN OKEANPRIBOR")
    )
    cuba = org_parts("Banco Nacional de Cuba S.A.")
    assert [(p.text, p.kind) for p in cuba] == [
        ("banco", PartKind.NAME),
        ("nacional", PartKind.NAME),
        ("de", PartKind.STOP),
        ("cuba", PartKind.NAME),
        ("sa", PartKind.ORG_CLASS),
    ]


def test_numbers_are_numeric_parts() -> None:
    assert [p.kind for p in org_parts("MARIA III 2")] == [
        PartKind.NAME,
        PartKind.NUMERIC,
        PartKind.NUMERIC,
    ]
    # In person names "II"/"Jr" are particles, not numbers.
    assert [p.kind for p in person_parts("John", "Smith II")][-1] is PartKind.STOP


def test_name_key_ignores_order_and_hyphen_variants() -> None:
    assert name_key(person_parts("John", "Smith")) == name_key(person_parts("Smith", "John"))
    assert join_hyphens("Hui-bong") == "Huibong"
    assert join_hyphens("Kim Jong Un") is None
