"""The project's vocabulary: keys and French labels every stage and output shares, each
written once.

- H3 resolutions (:func:`is_h3_resolution`) and travel modes (:data:`MODES`,
  :data:`MODE_LABELS_FR`);
- CORINE Land Cover classes and their level-1 groups (:data:`CLC_LABELS_FR`,
  :data:`LEVEL1`, :data:`LEVEL1_LABELS_FR`);
- the DREES APL indicators (:data:`APL_PROFESSIONS`: field, dataset, label, unit).

Facility categories and subcategories, with their labels, are data: ``data/categories.toml``
read by :mod:`geo._categories`. The modules that compute with these keys
(:mod:`geo.network`, :mod:`geo.landcover`, :mod:`geo.indicators`) re-export them; the
publishing and reporting modules import them from here, not from those stages.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "APL_PROFESSIONS",
    "CLC_CODES",
    "CLC_LABELS_FR",
    "H3_RESOLUTIONS",
    "LEVEL1",
    "LEVEL1_LABELS_FR",
    "LEVEL1_LABELS_INLINE_FR",
    "MODES",
    "MODE_LABELS_FR",
    "AplProfession",
    "Mode",
    "is_h3_resolution",
]

# --- H3 ----------------------------------------------------------------------------------

#: The H3 resolutions (0, the coarsest, to 15).
H3_RESOLUTIONS: range = range(16)


def is_h3_resolution(value: object) -> bool:
    """True when ``value`` is an integer H3 resolution (0..15)."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and int(value) in H3_RESOLUTIONS)


# --- travel modes ------------------------------------------------------------------------

Mode = Literal["walk", "bike"]
#: Travel modes with a street graph.
MODES: tuple[str, ...] = ("walk", "bike")
#: French labels of the travel modes ("temps à pied").
MODE_LABELS_FR: dict[str, str] = {"walk": "à pied", "bike": "à vélo"}


# --- CORINE Land Cover --------------------------------------------------------------------

#: The 44 CORINE Land Cover level-3 classes with their French labels (nomenclature CLC).
CLC_LABELS_FR: dict[int, str] = {
    111: "Tissu urbain continu",
    112: "Tissu urbain discontinu",
    121: "Zones industrielles ou commerciales et installations publiques",
    122: "Réseaux routier et ferroviaire et espaces associés",
    123: "Zones portuaires",
    124: "Aéroports",
    131: "Extraction de matériaux",
    132: "Décharges",
    133: "Chantiers",
    141: "Espaces verts urbains",
    142: "Équipements sportifs et de loisirs",
    211: "Terres arables hors périmètres d'irrigation",
    212: "Périmètres irrigués en permanence",
    213: "Rizières",
    221: "Vignobles",
    222: "Vergers et petits fruits",
    223: "Oliveraies",
    231: "Prairies et autres surfaces toujours en herbe à usage agricole",
    241: "Cultures annuelles associées à des cultures permanentes",
    242: "Systèmes culturaux et parcellaires complexes",
    243: "Surfaces essentiellement agricoles, interrompues par des espaces naturels importants",
    244: "Territoires agroforestiers",
    311: "Forêts de feuillus",
    312: "Forêts de conifères",
    313: "Forêts mélangées",
    321: "Pelouses et pâturages naturels",
    322: "Landes et broussailles",
    323: "Végétation sclérophylle",
    324: "Forêt et végétation arbustive en mutation",
    331: "Plages, dunes et sable",
    332: "Roches nues",
    333: "Végétation clairsemée",
    334: "Zones incendiées",
    335: "Glaciers et neiges éternelles",
    411: "Marais intérieurs",
    412: "Tourbières",
    421: "Marais maritimes",
    422: "Marais salants",
    423: "Zones intertidales",
    511: "Cours et voies d'eau",
    512: "Plans d'eau",
    521: "Lagunes littorales",
    522: "Estuaires",
    523: "Mers et océans",
}
CLC_CODES: tuple[int, ...] = tuple(CLC_LABELS_FR)

#: Level-1 group key per first digit of the CLC code.
LEVEL1: dict[int, str] = {
    1: "artificialise",
    2: "agricole",
    3: "foret_semi_naturel",
    4: "zone_humide",
    5: "eau",
}
LEVEL1_LABELS_FR: dict[str, str] = {
    "artificialise": "Territoires artificialisés",
    "agricole": "Territoires agricoles",
    "foret_semi_naturel": "Forêts et milieux semi-naturels",
    "zone_humide": "Zones humides",
    "eau": "Surfaces en eau",
}
#: The same, lower-cased for use inside a sentence ("part des territoires agricoles").
LEVEL1_LABELS_INLINE_FR: dict[str, str] = {
    k: v[0].lower() + v[1:] for k, v in LEVEL1_LABELS_FR.items()
}


# --- DREES APL ----------------------------------------------------------------------------

@dataclass(frozen=True)
class AplProfession:
    """One APL indicator: output field, dataset id, French label and unit."""

    field: str
    dataset: str
    label: str
    unit: str
    #: Lower-cased fragments that identify the value column in the DREES file.
    column_has: tuple[str, ...]


APL_PROFESSIONS: tuple[AplProfession, ...] = (
    AplProfession("apl_mg", "apl_mg", "médecins généralistes de 65 ans et moins",
                  "consultations par habitant et par an", ("médecins généralistes", "65 ans")),
    AplProfession("apl_mg_tous_ages", "apl_mg", "médecins généralistes, tous âges",
                  "consultations par habitant et par an",
                  ("médecins généralistes", "sans borne")),
    AplProfession("apl_dentistes", "apl_dentistes", "chirurgiens-dentistes",
                  "ETP pour 100 000 habitants", ("dentistes",)),
    AplProfession("apl_infirmiers", "apl_infirmiers", "infirmiers",
                  "ETP pour 100 000 habitants", ("infirmi",)),
    AplProfession("apl_kine", "apl_kine", "masseurs-kinésithérapeutes",
                  "ETP pour 100 000 habitants", ("kinésithérapeutes",)),
    AplProfession("apl_sages_femmes", "apl_sages_femmes", "sages-femmes",
                  "ETP pour 100 000 femmes", ("sages-femmes",)),
)
