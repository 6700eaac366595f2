"""Free text a person types (names, addresses): one normal form, no invisible characters.

A name is compared, screened against sanctions lists and shown to staff; a NUL, a bidi override
that makes "Anna" display as something else, or a zero-width space that makes two equal names
differ has no place in it. Text is NFC-normalized and stripped; such characters are refused, not
silently removed, so what is stored is what the client meant to send.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import BeforeValidator

# Unicode categories refused anywhere in the text: controls (NUL, tab, newline, C1), format
# characters (bidi embeddings, overrides and isolates U+202A-U+202E, U+2066-U+2069, marks,
# zero-width space/joiners U+200B-U+200D, word joiner, BOM, soft hyphen), lone surrogates,
# private use; and line/paragraph separators, which are line breaks in disguise.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


class TextRefused(ValueError):
    """The text holds a character that must not be stored."""


def refused_character(text: str) -> str | None:
    """The first refused character, as "U+XXXX NAME", or None."""
    for char in text:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            name = unicodedata.name(char, "control character")
            return f"U+{ord(char):04X} {name}"
    return None


def clean_text(text: str) -> str:
    """NFC, stripped of surrounding whitespace; refuses invisible and control characters."""
    normal = unicodedata.normalize("NFC", text).strip()
    bad = refused_character(normal)
    if bad is not None:
        raise TextRefused(f"contains a control or invisible character ({bad})")
    return normal


def _clean_input(value: Any) -> Any:
    # Before the str constraints run, so "   " becomes "" and fails min_length.
    return clean_text(value) if isinstance(value, str) else value


# A request field of typed text: `first_name: CleanText = Field(min_length=1, max_length=100)`.
CleanText = Annotated[str, BeforeValidator(_clean_input)]
