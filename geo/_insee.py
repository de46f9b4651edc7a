"""INSEE commune codes: validation and département (no data needed, importable anywhere)."""

from __future__ import annotations

import re

from geo.errors import UnknownCommuneError

__all__ = ["departement_of", "validate_insee"]

_INSEE_RE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")


def validate_insee(code: str) -> str:
    """Return ``code`` as a 5-character INSEE code or raise UnknownCommuneError."""
    text = str(code).strip().upper()
    if text.isdigit() and len(text) == 4:
        raise UnknownCommuneError(
            f"malformed INSEE code {code!r}: expected 5 characters (e.g. 01306, 2A004); "
            f"a leading zero may have been lost (did you mean 0{text}?)"
        )
    if not _INSEE_RE.match(text):
        raise UnknownCommuneError(
            f"malformed INSEE code {code!r}: expected 5 characters, digits or 2A/2B for "
            f"Corsica (e.g. 01306, 2A004, 97701)"
        )
    return text


def departement_of(insee: str) -> str:
    """Département code of a commune code: ``'01'``, ``'2A'``, ``'974'``."""
    return insee[:3] if insee.startswith(("97", "98")) else insee[:2]
