"""A town's peers: the communes sharing the attributes of a :class:`PeerRule` with it and
whose population lies in a band around its own, the rule widened step by step in a
documented order until enough are found (:func:`find_peers`, :class:`PeerSelection`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from geo import _svg as svg
from geo import communes
from geo.errors import SettingsError
from geo.settings import Settings, get_settings

log = logging.getLogger(__package__)  # geo.portrait: log lines keep their logger name


# --- peers -----------------------------------------------------------------------------

#: Criteria a peer rule can use: reference column and French description.
PEER_CRITERIA: dict[str, tuple[str, str]] = {
    "programme": ("programme", "même programme (PVD, ACV ou aucun)"),
    "centralite": ("centralite", "même niveau de centralité"),
    "densite": ("densite", "même niveau de densité"),
    "typologie": ("typologie", "même typologie (petite, moyenne ou grande ville)"),
    "ruralite": ("ruralite", "même typologie des ruralités"),
    "montagne": ("montagne", "même massif de montagne (ou hors montagne)"),
    "aav_categorie": ("aav_categorie_libelle", "même catégorie d'aire d'attraction"),
    "region": ("region_nom", "même région"),
    "departement": ("departement_nom", "même département"),
}
_GEOGRAPHIC = ("region", "departement")


def _programme(ref: pd.DataFrame) -> pd.Series:
    pvd, acv = ref["pvd"].astype(bool), ref["acv"].astype(bool)
    out = pd.Series("aucun", index=ref.index, dtype=object)
    out[pvd] = "PVD"
    out[acv] = "ACV"
    out[pvd & acv] = "PVD et ACV"
    return out


def _with_programme(ref: pd.DataFrame) -> pd.DataFrame:
    if "programme" in ref.columns:
        return ref
    out = ref.copy()
    out["programme"] = _programme(ref)
    # "hors montagne" is a level too: two non-mountain towns match
    out["montagne"] = out["montagne"].astype(object).where(out["montagne"].notna(),
                                                           "hors montagne")
    return out


@dataclass(frozen=True)
class PeerRule:
    """What a peer shares with the town: ``criteria`` and a population band.

    ``population_ratio`` r keeps communes of population r x P .. P / r (None: any size).
    """

    criteria: tuple[str, ...] = ("programme", "centralite")
    population_ratio: float | None = 0.5

    def __post_init__(self) -> None:
        unknown = [c for c in self.criteria if c not in PEER_CRITERIA]
        if unknown:
            raise SettingsError(
                f"unknown peer criterion {', '.join(map(repr, unknown))}: expected some of "
                + ", ".join(PEER_CRITERIA)
            )
        if len(set(self.criteria)) != len(self.criteria):
            raise SettingsError(f"peer criteria listed twice: {self.criteria!r}")
        r = self.population_ratio
        if r is not None and not 0 < r < 1:
            raise SettingsError(f"peer population ratio must be in (0, 1), got {r!r}")

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> PeerRule:
        """The rule of ``settings.peer_criteria`` and ``settings.peer_population_ratio``."""
        s = settings or get_settings()
        return cls(tuple(s.peer_criteria), s.peer_population_ratio)

    def population_band(self, population: float) -> tuple[float, float] | None:
        """Inclusive population bounds for a town of ``population`` (None: no band)."""
        if self.population_ratio is None:
            return None
        return population * self.population_ratio, population / self.population_ratio

    def mask(self, ref: pd.DataFrame, town: Mapping[str, Any]) -> pd.Series:
        """Communes of ``ref`` that follow the rule for ``town`` (the town included)."""
        ref = _with_programme(ref)
        ok = pd.Series(True, index=ref.index)
        for crit in self.criteria:
            col = PEER_CRITERIA[crit][0]
            ok &= (ref[col] == town[col]).fillna(False).astype(bool)
        if self.population_ratio is not None:
            lo, hi = self.population_band(float(town["population"]))  # type: ignore[misc]
            pop = ref["population"].astype(float)
            ok &= ((pop >= lo) & (pop <= hi)).fillna(False).astype(bool)
        return ok

    def describe(self, town: Mapping[str, Any] | None = None) -> str:
        """The rule in French, with the town's values when given."""
        parts = []
        for crit in self.criteria:
            col, text = PEER_CRITERIA[crit]
            if town is not None:
                text = f"{text} : {town[col]}"
            parts.append(text)
        if self.population_ratio is not None:
            r = self.population_ratio
            text = (f"population entre ×{f'{r:.4g}'.replace('.', ',')} et "
                    f"×{f'{1 / r:.4g}'.replace('.', ',')}")
            if town is not None:
                lo, hi = self.population_band(float(town["population"]))  # type: ignore[misc]
                text += (f" de celle de la commune ({svg.format_fr(math.ceil(lo))} à "
                         f"{svg.format_fr(math.floor(hi))} habitants)")
            parts.append(text)
        return "; ".join(parts) if parts else "toutes les communes"

    def widenings(self) -> list[PeerRule]:
        """This rule followed by its wider versions, in the documented order."""
        steps = [self]
        current = self
        if any(c in _GEOGRAPHIC for c in current.criteria):
            current = replace(current, criteria=tuple(c for c in current.criteria
                                                      if c not in _GEOGRAPHIC))
            steps.append(current)
        if current.population_ratio is not None:
            current = replace(current, population_ratio=current.population_ratio ** 2)
            steps.append(current)
        while current.criteria:
            current = replace(current, criteria=current.criteria[:-1])
            steps.append(current)
        if current.population_ratio is not None:
            current = replace(current, population_ratio=current.population_ratio ** 2)
            steps.append(current)
            current = replace(current, population_ratio=None)
            steps.append(current)
        return steps


@dataclass(frozen=True)
class PeerSelection:
    """The peers of a town and how they were chosen."""

    insee: str
    #: The rule asked for (criteria the town has no value for removed).
    rule: PeerRule
    #: The rule that gave the peers (``rule`` itself unless widened).
    applied: PeerRule
    #: Every rule tried, with the number of peers it gives.
    steps: tuple[tuple[PeerRule, int], ...]
    #: Peers: insee, nom, departement, region_nom, population, programme, centralite,
    #: densite; nearest population first.
    peers: pd.DataFrame
    min_count: int
    #: Criteria not applied because the town has no value for them.
    ignored: tuple[str, ...] = ()

    @property
    def widened(self) -> bool:
        """True when the rule asked for gave fewer than ``min_count`` peers."""
        return self.applied != self.rule

    def describe(self, town: Mapping[str, Any]) -> str:
        """One French paragraph: the rule, widening if any, and the count."""
        text = f"Règle : {self.rule.describe(town)}."
        if self.ignored:
            text += (" Critère(s) non appliqué(s), faute de valeur pour la commune : "
                     + ", ".join(self.ignored) + ".")
        if self.widened:
            n_first = self.steps[0][1]
            text += (f" Cette règle ne donne que {n_first} commune(s) comparable(s) "
                     f"(minimum {self.min_count}) : elle a été élargie à « "
                     f"{self.applied.describe(town)} ».")
        text += f" {len(self.peers)} commune(s) comparable(s)."
        return text


def find_peers(
    insee: str,
    rule: PeerRule | None = None,
    *,
    min_count: int | None = None,
    settings: Settings | None = None,
    reference: pd.DataFrame | None = None,
) -> PeerSelection:
    """The peers of a town under ``rule`` (default from settings), widened if needed.

    See the module doc for the rule and the widening order. The town is never its own
    peer. Raises :class:`UnknownCommuneError` for an unknown town. ``reference``: the
    commune reference (default :func:`geo.communes.load_reference`), to pass when
    choosing the peers of many towns.
    """
    s = settings or get_settings()
    rule = rule or PeerRule.from_settings(s)
    min_count = s.peer_min_count if min_count is None else int(min_count)
    if min_count < 1:
        raise SettingsError(f"min_count must be >= 1, got {min_count!r}")
    code = communes.resolve_insee(insee, s)
    ref = _with_programme(communes.load_reference(s) if reference is None else reference)
    town = ref.loc[ref["insee"] == code].iloc[0]
    ignored = tuple(c for c in rule.criteria if pd.isna(town[PEER_CRITERIA[c][0]]))
    if pd.isna(town["population"]):
        ignored += ("population",)
    effective = PeerRule(
        tuple(c for c in rule.criteria if c not in ignored),
        None if "population" in ignored else rule.population_ratio,
    )
    not_town = ref["insee"] != code
    steps: list[tuple[PeerRule, int]] = []
    chosen = effective
    mask = pd.Series(False, index=ref.index)
    for step in effective.widenings():
        mask = step.mask(ref, town) & not_town
        steps.append((step, int(mask.sum())))
        chosen = step
        if mask.sum() >= min_count:
            break
    if chosen != effective:
        log.warning("%s: %d peer(s) under the rule (%s); widened to: %s", code,
                    steps[0][1], effective.describe(), chosen.describe())
    peers = ref.loc[mask, ["insee", "nom", "departement", "region_nom", "population",
                           "programme", "centralite", "densite"]].copy()
    own = 1.0 if pd.isna(town["population"]) else max(float(town["population"]), 1.0)
    distance = np.abs(np.log(peers["population"].astype(float).clip(lower=1) / own))
    peers = peers.assign(_d=distance).sort_values(["_d", "insee"]).drop(columns="_d")
    return PeerSelection(code, effective, chosen, tuple(steps),
                         peers.reset_index(drop=True), min_count, ignored)
