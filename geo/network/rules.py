"""The travel modes and their rules: which street ways walking or cycling may use, and
in which direction (:func:`mode_rules`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from geo.errors import BadArgumentError
from geo.vocab import MODE_LABELS_FR, MODES, Mode  # noqa: F401 - re-exported


def check_mode(mode: str) -> str:
    """``mode`` if it is a travel mode of :data:`MODES`, else BadArgumentError."""
    if mode not in MODES:
        raise BadArgumentError(
            f"unknown travel mode {mode!r}: expected one of {', '.join(MODES)}")
    return mode


# --- mode rules -------------------------------------------------------------------------

#: Values of ``highway`` that are not usable streets (proposed, disused, platforms...).
NOT_STREETS = frozenset({
    "abandoned", "bus_guideway", "busway", "construction", "disused", "emergency_bay",
    "escape", "no", "planned", "platform", "proposed", "raceway", "razed", "rest_area",
    "services", "bus_stop", "via_ferrata", "ladder",
})
MOTORWAYS = frozenset({"motorway", "motorway_link"})
#: Pedestrian-only kinds: cycling only where bicycles are explicitly allowed.
NO_BIKES_BY_DEFAULT = frozenset({
    "footway", "steps", "pedestrian", "corridor", "elevator", "escalator", "bridleway",
})
_ALLOWED = frozenset({"yes", "designated", "permissive", "official", "destination",
                      "dismount"})
_FORBIDDEN = frozenset({"no", "private", "use_sidepath"})


def _values(s: pd.Series) -> pd.Series:
    return s.astype("string").str.strip().str.lower()


def mode_rules(ways: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Which ways a mode may use, and in which directions.

    Rules
    -----
    Both modes: no ``area=yes``, no proposed/abandoned/platform kinds
    (:data:`NOT_STREETS`), no motorways or ``motorroad=yes``, no ``access=no|private``
    unless the mode's own tag allows it.

    Walking ignores ``oneway`` and excludes ``foot=no|private|use_sidepath``.

    Cycling follows ``oneway`` (``oneway:bicycle=yes|-1`` also makes a street one-way
    for bicycles) except contraflow (``oneway:bicycle=no``, ``cycleway*=opposite*``);
    it excludes ``bicycle=no|private|use_sidepath``, and footways, steps, pedestrian
    streets, corridors and bridleways unless ``bicycle=yes|designated|permissive``.

    Returns
    -------
    DataFrame aligned with ``ways``: ``allowed``, ``forward``, ``backward`` (bool; along
    and against the segment order).
    """
    check_mode(mode)
    highway = _values(ways["highway"])
    access = _values(ways["access"])
    area = _values(ways["area"])
    own = _values(ways["foot" if mode == "walk" else "bicycle"])
    allowed = (
        highway.notna()
        & ~highway.isin(NOT_STREETS)
        & ~highway.isin(MOTORWAYS)
        & (area != "yes").fillna(True)
        & (_values(ways["motorroad"]) != "yes").fillna(True)
        & ~own.isin(_FORBIDDEN).fillna(False)
        & ~(access.isin({"no", "private"}).fillna(False) & ~own.isin(_ALLOWED).fillna(False))
    ).fillna(False).to_numpy(bool)
    oneway = ways["oneway"].to_numpy(np.int8)
    if mode == "walk":
        forward = backward = np.ones(len(ways), dtype=bool)
    else:
        allowed &= ~(highway.isin(NO_BIKES_BY_DEFAULT).fillna(False)
                     & ~own.isin(_ALLOWED).fillna(False)).to_numpy(bool)
        ob = _values(ways["oneway_bicycle"])
        contraflow = (
            (ob == "no").fillna(False)
            | _values(ways["cycleway"]).str.contains("opposite", regex=False).fillna(False)
        ).to_numpy(bool)
        bike_oneway = oneway.copy()
        bike_oneway[contraflow] = 0
        bike_oneway[ob.isin(["yes", "true", "1"]).fillna(False).to_numpy(bool)
                    & (oneway == 0)] = 1
        bike_oneway[(ob == "-1").fillna(False).to_numpy(bool) & (oneway == 0)] = -1
        forward = bike_oneway >= 0
        backward = bike_oneway <= 0
    return pd.DataFrame({"allowed": allowed, "forward": forward, "backward": backward},
                        index=ways.index)
