"""French labels and units of published fields.

Field names follow ARCHITECTURE.md (units in names: ``_minutes``, ``_share``,
``_per_10k``, ``_mw``...). :func:`field_label` turns a name into the label and unit shown
to users: QGIS field aliases in the GeoPackage styles and the viewer's popups (the viewer
build writes the labels of every published field to ``fields.json``). Category and
subcategory keys get their French labels from ``data/categories.toml``
(:func:`geo._categories.load_categories`), else from the built-in names below.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from geo._categories import load_categories
from geo.errors import InputFileError
from geo.settings import Settings, get_settings
from geo.vocab import APL_PROFESSIONS, CLC_LABELS_FR, LEVEL1_LABELS_INLINE_FR, MODE_LABELS_FR

__all__ = [
    "CLC_LEVEL1_LABELS",
    "FieldLabel",
    "category_groups",
    "category_labels",
    "field_label",
    "field_labels",
]

log = logging.getLogger(__name__)

#: Labels of the category keys (ARCHITECTURE.md) and of common subcategories, used
#: when ``data/categories.toml`` does not define them.
_BUILTIN_LABELS = {
    "sante": "santé",
    "commerces": "commerces",
    "culture": "culture",
    "education": "éducation",
    "services": "services",
    "energie": "énergies renouvelables",
    "medecin_generaliste": "médecin généraliste",
    "mg": "médecin généraliste",
    "pharmacie": "pharmacie",
    "dentiste": "dentiste",
    "infirmier": "infirmier",
    "kinesitherapeute": "masseur-kinésithérapeute",
    "sage_femme": "sage-femme",
    "hopital": "hôpital ou clinique",
    "maison_de_sante": "maison de santé",
    "boulangerie": "boulangerie",
    "boucherie": "boucherie",
    "epicerie": "épicerie",
    "supermarche": "supermarché",
    "hypermarche": "hypermarché",
    "ecole": "école",
    "college": "collège",
    "lycee": "lycée",
    "mairie": "mairie",
    "bureau_de_poste": "bureau de poste",
    "cinema": "cinéma",
    "musee": "musée",
    "bibliotheque": "bibliothèque ou médiathèque",
    "eolienne": "éolienne",
    "centrale_solaire": "centrale solaire",
    "hydroelectricite": "centrale hydroélectrique",
    "vivant": "culture vivante",
    "patrimoine": "patrimoine",
}

#: French labels of the level-1 CORINE Land Cover keys (lower case, for sentences).
CLC_LEVEL1_LABELS = {
    **LEVEL1_LABELS_INLINE_FR,
    "nodata": "sans donnée",
}

_APL = {p.field.removeprefix("apl_"): p.label for p in APL_PROFESSIONS}

_MODES = MODE_LABELS_FR

#: Fixed labels: name -> (label, unit).
_FIXED: dict[str, tuple[str, str]] = {
    "insee": ("Code INSEE", ""),
    "nom": ("Commune", ""),
    "h3": ("Cellule H3", ""),
    "population": ("Population", "hab."),
    "area_km2": ("Surface", "km²"),
    "is_town": ("Commune du programme (PVD/ACV)", ""),
    "facility_id": ("Identifiant", ""),
    "source": ("Source", ""),
    "source_id": ("Identifiant à la source", ""),
    "category": ("Catégorie", ""),
    "category_label": ("Catégorie", ""),
    "subcategory": ("Sous-catégorie", ""),
    "subcategory_label": ("Type d'équipement", ""),
    "subcategory_group": ("Groupe", ""),
    "name": ("Nom", ""),
    "brand": ("Enseigne", ""),
    "chain": ("Chaîne (oui/non)", ""),
    "power_mw": ("Puissance", "MW"),
    "mode": ("Mode", ""),
    "minutes": ("Temps de parcours", "min"),
    "length_m": ("Longueur", "m"),
    "walk_s": ("Temps à pied", "s"),
    "bike_s": ("Temps à vélo", "s"),
    "walk_reverse_s": ("Temps à pied en sens inverse", "s"),
    "bike_reverse_s": ("Temps à vélo en sens inverse", "s"),
    "u": ("Nœud de départ", ""),
    "v": ("Nœud d'arrivée", ""),
    "node_id": ("Nœud du réseau", ""),
    "way_id": ("Identifiant de la voie (OSM)", ""),
    "highway": ("Type de voie (OSM)", ""),
    "oneway": ("Sens unique", ""),
    "area_m2": ("Surface", "m²"),
    "street_km": ("Rues atteintes", "km"),
    "origin": ("Point de départ", ""),
    "clc_dominant": ("Occupation des sols dominante", ""),
    "commerces_chain_share": ("Part des commerces appartenant à une chaîne", "%"),
    "eolienne_power_mw": ("Puissance éolienne installée", "MW"),
    "clc_nodata_share": ("Part sans donnée d'occupation des sols", "%"),
    "clc_artificialise_change_2012_2018": (
        "Évolution de la part artificialisée 2012-2018", "points de %"),
    "apl_mg_sous_dote": ("Sous-doté en médecins généralistes (APL < 2,5)", ""),
    "code_18": ("Code CORINE Land Cover 2018", ""),
    "code_12": ("Code CORINE Land Cover 2012", ""),
    "clc_level1": ("Occupation des sols (CORINE, niveau 1)", ""),
    "label": ("Classe CORINE Land Cover", ""),
    "resolution": ("Résolution H3", ""),
    "walk_nodes": ("Nœuds du réseau piéton dans la zone", ""),
    "beyond_street_data": ("Hors des données de rues (temps estimé à vol d'oiseau)", ""),
    "kind": ("Type", ""),
    "buffer_m": ("Distance de rattachement aux rues", "m"),
    "bike_nodes": ("Nœuds du réseau cyclable dans la zone", ""),
}


@dataclass(frozen=True, slots=True)
class FieldLabel:
    """French label and unit of a field (``unit`` is '' when unitless; ``%`` means a
    0..1 share shown as a percentage)."""

    label: str
    unit: str = ""

    @property
    def text(self) -> str:
        """Label with the unit in parentheses, e.g. ``Temps médian à pied (min)``."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


def _read_categories(settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, groups) from the categories file; empty when it is missing or broken
    (the built-in labels then apply)."""
    try:
        cats = load_categories(settings)
    except InputFileError as exc:
        log.warning("category labels: %s; using built-in labels", exc)
        return {}, {}
    labels = dict(cats.category_labels)
    for groups in cats.groups.values():
        labels.update(groups)
    labels.update({k: sub.label for k, sub in cats.subcategories.items()})
    return labels, {k: sub.group for k, sub in cats.subcategories.items()}


def category_labels(settings: Settings | None = None) -> dict[str, str]:
    """French labels of category, group and subcategory keys (``data/categories.toml``
    first, then the built-in names)."""
    return {**_BUILTIN_LABELS, **_read_categories(settings or get_settings())[0]}


def category_groups(settings: Settings | None = None) -> dict[str, str]:
    """Group key of each subcategory (e.g. culture ``cinema`` -> ``vivant``), from
    ``data/categories.toml``."""
    return _read_categories(settings or get_settings())[1]


def _target(key: str, labels: Mapping[str, str]) -> str:
    """Label of a key for use inside a sentence (``Santé`` -> ``santé``)."""
    label = labels.get(key, key.replace("_", " "))
    if len(label) > 1 and label[1].islower():
        label = label[0].lower() + label[1:]
    return label


_ACCESS = re.compile(
    r"^(?P<mode>walk|bike)_(?P<target>.+)_(?:minutes_(?P<stat>min|median|mean|max)"
    r"|count_(?P<within>\d+)min)$"
)
_STAT = {"min": "minimal", "median": "médian", "mean": "moyen", "max": "maximal"}


def field_label(name: str, labels: Mapping[str, str] | None = None) -> FieldLabel:
    """French label and unit of field ``name``.

    Parameters
    ----------
    name
        A published field name (ARCHITECTURE.md conventions).
    labels
        Category / subcategory labels (default: the built-in names).
    """
    labels = _BUILTIN_LABELS if labels is None else labels
    if name in _FIXED:
        return FieldLabel(*_FIXED[name])
    if m := _ACCESS.match(name):
        mode, target = _MODES[m["mode"]], _target(m["target"], labels)
        if m["stat"]:
            return FieldLabel(f"Temps {_STAT[m['stat']]} {mode} : {target}", "min")
        return FieldLabel(f"Équipements ({target}) à moins de {m['within']} min {mode}")
    if (m := re.match(r"^(.+)_minutes$", name)) and m[1] in labels:
        # street edges and nodes: minutes to the nearest facility, by the row's mode
        return FieldLabel(f"Temps jusqu'à l'équipement le plus proche : {_target(m[1], labels)}",
                          "min")
    if m := re.match(r"^e2sfca_mg_(walk|bike)_per_10k$", name):
        return FieldLabel(
            f"Médecins généralistes accessibles {_MODES[m[1]]} en 20 min (pondérés par le "
            "temps de trajet et la population à desservir)", "pour 10 000 hab.")
    if m := re.match(r"^apl_(.+)$", name):
        prof = _APL.get(m[1], m[1].replace("_", " "))
        return FieldLabel(f"APL {prof}", "consultations/hab./an" if m[1].startswith("mg")
                          else "ETP pour 100 000 hab.")
    if m := re.match(r"^n_(.+)_per_10k$", name):
        return FieldLabel(f"Équipements pour 10 000 habitants : {_target(m[1], labels)}")
    if m := re.match(r"^n_(.+)$", name):
        return FieldLabel(f"Nombre d'équipements : {_target(m[1], labels)}")
    if m := re.match(r"^clc_(.+)_share$", name):
        key = m[1]
        if key.isdigit() and int(key) in CLC_LABELS_FR:
            return FieldLabel(f"Part CORINE {key} : {CLC_LABELS_FR[int(key)].lower()}", "%")
        return FieldLabel(f"Part {CLC_LEVEL1_LABELS.get(key, key.replace('_', ' '))}", "%")
    if m := re.match(r"^(.+)_(m|km|kmh|s|minutes|mw|km2)$", name):
        unit = {"kmh": "km/h", "minutes": "min", "mw": "MW", "km2": "km²"}.get(m[2], m[2])
        return FieldLabel(m[1].replace("_", " ").capitalize(), unit)
    if name.endswith("_share"):
        return FieldLabel(name[: -len("_share")].replace("_", " ").capitalize(), "%")
    return FieldLabel(name.replace("_", " ").capitalize())


def field_labels(names: Iterable[str], settings: Settings | None = None) -> dict[str, FieldLabel]:
    """:func:`field_label` for many names, with the category labels read once."""
    labels = category_labels(settings)
    return {n: field_label(n, labels) for n in names}
