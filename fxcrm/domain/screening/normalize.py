"""Name normalization, identical for list names and client names (COMPLIANCE.md §2.1).

Steps: NFKC + casefold, transliteration to ASCII (anyascii), punctuation split, removal of leading
honorifics, canonical organisation legal forms, and tagging of particles/stopwords. Particles are
kept (scored at a lower weight) but excluded from candidate blocking.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from anyascii import anyascii


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


class PartKind(StrEnum):
    NAME = "name"
    STOP = "stop"  # particles and stopwords: kept for scoring at x0.7, never used for blocking
    ORG_CLASS = "org_class"  # canonical legal form (llc, jsc, ltd, ...)
    NUMERIC = "numeric"  # contains a digit: vessel and company numbers


@dataclass(frozen=True, slots=True)
class NamePart:
    text: str
    kind: PartKind = PartKind.NAME
    family: bool = False


# Leading titles that say nothing about identity ("Dr. Ayman", "Shaykh Umar", "General ...").
PERSON_PREFIXES = _words(
    """
    mr mrs ms miss mx dr prof professor sir dame lord lady rev reverend fr father
    sheikh shaikh shaykh sheik shekh cheikh haji hajji hadji hajj alhaji mullah mulla mullo maulana
    maulvi mawlawi moulvi mufti imam ayatollah hojatoleslam emir amir
    general gen colonel col lieutenant lt major maj captain capt commander cmdr brigadier admiral
    sergeant sgt marshal
    """
)

# Particles inside person names (Arabic articles and filiation, European nobiliary particles).
PERSON_STOPWORDS = _words(
    """
    al el ul ad ar as at az ash an bin ibn bint binti bn de del della dei der den des di da das dos
    do du la le lo van von ter ten y e jr sr ii iii iv
    """
)

ORG_STOPWORDS = _words("the of and for de la del des du di y et und im imeni al el")

# Legal forms -> canonical token. Multi-word phrases are matched greedily, longest first, after
# tokenization, so "Obshchestvo s Ogranichennoi Otvetstvennostyu" and "OOO" both become "llc".
_ORG_TYPES: dict[str, tuple[str, ...]] = {
    "llc": (
        "llc",
        "ooo",
        "tov",
        "limited liability company",
        "limited liability co",
        "limited liability partnership company",
        "obshchestvo s ogranichennoi otvetstvennostyu",
        "obshchestvo s ogranichennoy otvetstvennostyu",
        "obshchestvo s ogranichennoi otvetstvennostiu",
        "obshcestvo s ogranichennoi otvetstvennostyu",
        "obshchestvo s ogranichennoj otvetstvennostju",
        "tovarystvo z obmezhenoyu vidpovidalnistyu",
        "sp z oo",
        "spzoo",
        "fzllc",
        "fz llc",
    ),
    "jsc": (
        "jsc",
        "ao",
        "joint stock company",
        "aktsionernoe obshchestvo",
        "aktsionernoye obshchestvo",
        "aksionernoe obshchestvo",
    ),
    "ojsc": (
        "ojsc",
        "oao",
        "open joint stock company",
        "otkrytoe aktsionernoe obshchestvo",
        "otkrytoye aktsionernoye obshchestvo",
    ),
    "cjsc": (
        "cjsc",
        "zao",
        "closed joint stock company",
        "zakrytoe aktsionernoe obshchestvo",
        "zakrytoye aktsionernoye obshchestvo",
    ),
    "pjsc": (
        "pjsc",
        "pao",
        "public joint stock company",
        "publichnoe aktsionernoe obshchestvo",
        "publichnoye aktsionernoye obshchestvo",
    ),
    "ltd": ("ltd", "limited", "ltda", "limitada"),
    "co": ("co", "company", "compania", "cia", "companhia", "compagnie", "cie"),
    "corp": ("corp", "corporation", "corporacion"),
    "inc": ("inc", "incorporated"),
    "plc": ("plc", "public limited company"),
    "sa": ("sa", "sociedad anonima", "societe anonyme", "sociedade anonima"),
    "sarl": ("sarl", "societe a responsabilite limitee"),
    "gmbh": ("gmbh", "mbh", "gesellschaft mit beschrankter haftung"),
    "ag": ("ag", "aktiengesellschaft"),
    "llp": ("llp", "limited liability partnership"),
    "lp": ("lp", "limited partnership"),
    "bv": ("bv", "besloten vennootschap"),
    "nv": ("nv", "naamloze vennootschap"),
    "spa": ("spa", "societa per azioni"),
    "srl": ("srl", "societa a responsabilita limitata"),
    "sl": ("sl",),
    "sas": ("sas",),
    "sdnbhd": ("sdn bhd", "sdnbhd", "sendirian berhad"),
    "bhd": ("bhd", "berhad"),
    "pte": ("pte",),
    "pty": ("pty", "proprietary"),
    "fze": ("fze", "free zone establishment"),
    "fzco": ("fzco", "fzc", "free zone company"),
    "est": ("est", "establishment"),
    "kft": ("kft",),
    "doo": ("doo", "d o o"),
    "sae": ("sae",),
}

ORG_TYPE_PHRASES: dict[tuple[str, ...], str] = {
    tuple(phrase.split()): canonical
    for canonical, phrases in _ORG_TYPES.items()
    for phrase in phrases
}
ORG_CLASS_TOKENS = frozenset(_ORG_TYPES)
_MAX_PHRASE = max(len(p) for p in ORG_TYPE_PHRASES)

# Spelling variants of the same given name across transliteration schemes; parts in one group score
# 0.9 (LogicV2 "same name symbol"). Deliberately small: Arabic and East Slavic names dominate the lists
# and their romanizations drift beyond what Jaro-Winkler with a Levenshtein gate accepts.
_NAME_GROUPS: tuple[str, ...] = (
    "muhammad muhammed mohammad mohammed mohamad mohamed mohamet mohd muhamad muhamed mahomed "
    "mehmet mehmed muhammet mukhammad mukhammed magomed mohamud maxamed mohammod mouhamed",
    "ahmad ahmed ahmet akhmad akhmed ahmat",
    "mahmud mahmoud mahmood makhmud",
    "husayn hussein husein hussain husain hosein hossein hussien houssein husseyn huseyin",
    "hasan hassan hasen hassen khasan",
    "yusuf yousef youssef yousif yusef yousuf yussuf youcef jusuf yosef",
    "abd abdul abdel abdal abdol abdoul abdu",
    "abdullah abdallah abdulla abdellah abdalla",
    "umar omar omer umer",
    "uthman osman othman usman ousmane",
    "said saeed saed saied sayeed",
    "khalid khaled khaleed",
    "jamal gamal djamel jamel djamal",
    "qasim qassim kasim kassem qassem qasem kassim",
    "ibrahim ebrahim brahim ibragim ibraheem",
    "ismail ismael ismayil",
    "sulayman suleiman sulaiman soliman suleyman sulejman slimane soleiman suliman",
    "yaqub yacoub yakub yaqoob yakoub",
    "hamid hameed hamed",
    "rashid rasheed rachid rashed",
    "majid majeed magid majed",
    "walid waleed oualid",
    "faisal faysal feisal faycal",
    "abu abou",
    "ali aly",
    "usama osama oussama",
    "zakaria zakariya zakariyya zakariah",
    "mustafa mostafa moustafa mustapha",
    "salih saleh",
    "yahya yehia yahia yehya",
    "isa issa eisa",
    "musa moussa mousa mussa",
    "nur noor nour",
    "fatima fatimah fatma",
    "aisha aysha aicha ayesha",
    "sergey sergei serguei sergej serhiy serhii sergiy sergii",
    "aleksandr alexander alexandr aleksander oleksandr alexandre",
    "aleksey alexey aleksei alexei oleksiy oleksii alexej",
    "yevgeny yevgeniy evgeny evgeniy evgenii yevgenii evgenij yevhen ievgen yevgen",
    "dmitry dmitri dmitriy dmitrii dmytro dimitri dmitrij",
    "yuri yury yuriy iurii yurii yurij iuri juri",
    "andrey andrei andriy andrii andrej",
    "mikhail mykhailo mihail michail",
    "nikolay nikolai mykola nikolaj",
    "vladimir volodymyr wladimir",
    "viktor victor",
    "igor ihor",
    "pyotr petr petro piotr",
    "yekaterina ekaterina katerina kateryna",
    "yelena elena olena jelena",
    "tatyana tatiana tetiana tatjana",
    "natalya natalia nataliya natalja",
    "yulia yuliya julia iuliia",
    "anatoly anatoliy anatolii anatolij",
    "vitaly vitaliy vitalii",
    "gennady gennadiy gennadii hennadiy",
    "valery valeriy valerii",
    "vasily vasiliy vasilii vasyl",
    "grigory grigoriy hryhoriy",
    "georgy georgiy georgii heorhiy",
    "konstantin kostiantyn kostyantyn constantin",
    "maksim maxim maksym",
    "arkady arkadiy arkadii",
    "yaroslav iaroslav",
)
NAME_GROUPS: dict[str, str] = {
    name: group.split()[0] for group in _NAME_GROUPS for name in group.split()
}

_DOTTED_ABBREVIATION = re.compile(r"\b[a-z](?:\.[a-z])+\b\.?")
_APOSTROPHES = re.compile(r"['`\u00b4\u2018\u2019\u02bc\u02bb]")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """NFKC, casefold and transliterate to lowercase ASCII ("Сергей" -> "sergey", "Müller" -> "muller")."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():
        text = anyascii(text).casefold()
    return text


def tokenize(text: str) -> list[str]:
    """Split a folded name into tokens.

    Apostrophes are deleted rather than split on, so "O'Brien" and "OBrien" agree and Arabic
    romanizations ("Qa'ida") keep one token; dotted abbreviations ("S.A.R.L.") are joined.
    """
    text = fold(text)
    text = _APOSTROPHES.sub("", text)
    text = _DOTTED_ABBREVIATION.sub(lambda m: m.group(0).replace(".", "") + " ", text)
    return [t for t in _NON_ALNUM.split(text) if t]


# Roman numerals distinguish vessels and companies ("MARIA III"); single letters stay initials.
ROMAN_NUMERALS = _words("ii iii iv vi vii viii ix xi xii xiii xiv xv xvi xvii xviii xix xx")


def is_numeric(token: str) -> bool:
    return token in ROMAN_NUMERALS or any(c.isdigit() for c in token)


def _kind(token: str, stopwords: frozenset[str], *, roman: bool = False) -> PartKind:
    if any(c.isdigit() for c in token) or (roman and token in ROMAN_NUMERALS):
        return PartKind.NUMERIC
    if token in stopwords:
        return PartKind.STOP
    return PartKind.NAME


def _strip_prefixes(tokens: list[str]) -> list[str]:
    start = 0
    while start < len(tokens) - 1 and tokens[start] in PERSON_PREFIXES:
        start += 1
    return tokens[start:]


def person_parts(given: str | None, family: str | None) -> tuple[NamePart, ...]:
    """Parts of a person name; `family` tokens are tagged so the scorer can weight them x1.3."""
    given_tokens = tokenize(given) if given else []
    family_tokens = tokenize(family) if family else []
    # Honorifics lead the name ("Dr. Ayman AL ZAWAHIRI", "Shaykh Umar ..."): strip them there only.
    if given_tokens:
        given_tokens = _strip_prefixes(given_tokens)
    elif family_tokens:
        family_tokens = _strip_prefixes(family_tokens)
    parts = [NamePart(t, _kind(t, PERSON_STOPWORDS)) for t in given_tokens]
    parts += [NamePart(t, _kind(t, PERSON_STOPWORDS), family=True) for t in family_tokens]
    return tuple(parts)


def org_parts(name: str) -> tuple[NamePart, ...]:
    """Parts of an organisation, vessel or aircraft name with legal forms canonicalized."""
    tokens = tokenize(name)
    parts: list[NamePart] = []
    i = 0
    while i < len(tokens):
        for size in range(min(_MAX_PHRASE, len(tokens) - i), 0, -1):
            canonical = ORG_TYPE_PHRASES.get(tuple(tokens[i : i + size]))
            if canonical is not None:
                parts.append(NamePart(canonical, PartKind.ORG_CLASS))
                i += size
                break
        else:
            parts.append(NamePart(tokens[i], _kind(tokens[i], ORG_STOPWORDS, roman=True)))
            i += 1
    return tuple(parts)


_HYPHEN = re.compile(r"(?<=\w)[-\u2010\u2011\u2013](?=\w)")


def join_hyphens(text: str | None) -> str | None:
    """ "Hui-bong" -> "Huibong"; None when there is no hyphen.

    Hyphenated parts are written both split and joined ("Kim Jong-un", "Kim Jongun", "Tony-Lee"),
    so names with hyphens are indexed and queried in both forms.
    """
    if not text or not _HYPHEN.search(text):
        return None
    return _HYPHEN.sub("", text)


def name_key(parts: tuple[NamePart, ...]) -> str:
    """Order-insensitive key for literal and weak-alias matching ("smith john" == "john smith")."""
    return " ".join(sorted(p.text for p in parts))
