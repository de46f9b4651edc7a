"""The facility vocabulary: categories file parsing, OSM tag rules, BPE codes, chains.

Everything here is driven by ``data/categories.toml`` (``settings.categories_file``);
:mod:`geo.facilities` uses it to classify every source into one set of keys.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from geo.errors import InputFileError
from geo.settings import Settings, get_settings

__all__ = [
    "CATEGORY_KEYS",
    "Categories",
    "OsmRule",
    "Subcategory",
    "load_categories",
    "normalize_text",
]

#: The six category keys, in display order.
CATEGORY_KEYS = ("sante", "commerces", "culture", "education", "services", "energie")

#: BPE nomenclatures: ``2013`` (vintages 2009-2020 for the A-D domains), ``2021`` (revised).
Nomenclature = Literal["2013", "2021"]

_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def normalize_text(value: object) -> str:
    """Lower-case ASCII form of a name: accents, apostrophes and punctuation removed.

    ``"Intermarché Super"`` -> ``"intermarche super"``, ``"L'Écho"`` -> ``"lecho"``.
    Empty for ``None``/NaN.
    """
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = re.sub(r"[’'`´.&]", "", _unaccent_lower(str(value)))
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(text.split())


# --- OSM tag rules ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Condition:
    key: str
    op: Literal["in", "any", "absent", "not_in", "regex"]
    values: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None

    def test(self, tags: Mapping[str, str]) -> bool:
        value = tags.get(self.key)
        if self.op == "absent":
            return value is None
        if self.op == "any":
            return value is not None and value != "no"
        if self.op == "regex":
            return value is not None and self.pattern is not None and bool(
                self.pattern.search(_unaccent_lower(value))
            )
        first = None if value is None else value.split(";")[0].strip()
        hit = value is not None and (value in self.values or first in self.values)
        return hit if self.op == "in" else not hit


@dataclass(frozen=True, slots=True)
class OsmRule:
    """Conditions joined by ``&`` (see the header of ``data/categories.toml``)."""

    text: str
    conditions: tuple[_Condition, ...]

    def matches(self, tags: Mapping[str, str]) -> bool:
        """True when every condition holds for ``tags``."""
        return all(c.test(tags) for c in self.conditions)

    @property
    def anchor(self) -> str:
        """Key of the first condition, which must be present: used to pre-select objects."""
        return self.conditions[0].key


def _unaccent_lower(value: str) -> str:
    """Lower case without accents or ligatures (``"Éco"`` -> ``"eco"``, ``"Bœuf"`` ->
    ``"boeuf"``), as :func:`geo.communes.normalize_name` does."""
    text = unicodedata.normalize("NFKD", value)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return text.replace("œ", "oe").replace("æ", "ae")


def _parse_rule(text: str, where: str) -> OsmRule:
    conditions = []
    for part in (p.strip() for p in text.split("&")):
        if not part:
            raise InputFileError(f"{where}: empty condition in OSM rule {text!r}")
        if part.startswith("!"):
            conditions.append(_Condition(part[1:].strip(), "absent"))
        elif "!=" in part:
            key, values = part.split("!=", 1)
            conditions.append(_Condition(key.strip(), "not_in", frozenset(values.split("|"))))
        elif "~" in part:
            key, pattern = part.split("~", 1)
            try:
                compiled = re.compile(pattern.strip())
            except re.error as exc:
                raise InputFileError(
                    f"{where}: bad regular expression in {text!r}: {exc}") from None
            conditions.append(_Condition(key.strip(), "regex", pattern=compiled))
        elif "=" in part:
            key, values = part.split("=", 1)
            if values.strip() == "*":
                conditions.append(_Condition(key.strip(), "any"))
            else:
                vals = frozenset(v.strip() for v in values.split("|"))
                conditions.append(_Condition(key.strip(), "in", vals))
        else:
            raise InputFileError(
                f"{where}: cannot read condition {part!r} in OSM rule {text!r} "
                "(expected key=value, key=*, !key, key!=value or key~regex)"
            )
    first = conditions[0]
    if first.op not in {"in", "any", "regex"} or first.key == "name":
        raise InputFileError(
            f"{where}: OSM rule {text!r} must start with a key=value, key=* or key~regex "
            "condition on a key other than name (it selects the objects to look at; a "
            "name-only rule would match streets)"
        )
    return OsmRule(text, tuple(conditions))


# --- categories ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subcategory:
    """One subcategory of the categories file."""

    key: str
    category: str
    group: str
    label: str
    osm: tuple[OsmRule, ...] = ()
    bpe_2013: tuple[str, ...] = ()
    bpe_2021: tuple[str, ...] = ()


@dataclass(frozen=True)
class Categories:
    """Parsed ``categories.toml``: labels, groups, mappings, exclusions and chains."""

    path: Path
    version: int
    #: category key -> French label
    category_labels: dict[str, str]
    #: category key -> {group key: French label}
    groups: dict[str, dict[str, str]]
    #: subcategory key -> Subcategory, in file order
    subcategories: dict[str, Subcategory]
    #: national single-kind source id -> subcategory key
    source_subcategory: dict[str, str]
    osm_exclude: tuple[OsmRule, ...]
    osm_keys: tuple[str, ...]
    osm_ignore: dict[str, frozenset[str]]
    bpe_codes: dict[str, dict[str, str]]
    bpe_ignore: dict[str, tuple[str, ...]]
    #: normalized banner -> display name, matched as whole value or word prefix
    banners_prefix: dict[str, str]
    #: normalized banner -> display name, matched as whole value only
    banners_exact: dict[str, str]
    _anchor_keys: frozenset[str] = field(default=frozenset(), repr=False)

    # --- lookups ---------------------------------------------------------------------

    def category_of(self, subcategory: str) -> str:
        """Category key of a subcategory key."""
        return self.subcategories[subcategory].category

    def subcategory_keys(self, category: str | None = None) -> list[str]:
        """Subcategory keys in file order (of one category, or all)."""
        return [k for k, s in self.subcategories.items() if category in (None, s.category)]

    def label(self, key: str) -> str:
        """French label of a category or subcategory key."""
        if key in self.category_labels:
            return self.category_labels[key]
        return self.subcategories[key].label

    # --- OSM ---------------------------------------------------------------------------

    @property
    def osm_anchor_keys(self) -> frozenset[str]:
        """Tag keys of which an OSM object needs at least one to be worth classifying."""
        return self._anchor_keys

    def classify_osm(self, tags: Mapping[str, str]) -> tuple[list[str], str | None]:
        """Subcategories of an OSM object (at most one per category) and its status.

        Returns ``(subcategories, status)`` where status is ``None`` when classified or
        nothing to report, ``"excluded"`` for closed or vacant objects, or an unknown
        ``"key=value"`` tag (a watched key whose value maps to nothing).
        """
        if any(rule.matches(tags) for rule in self.osm_exclude):
            return [], "excluded"
        found: dict[str, str] = {}
        for sub in self.subcategories.values():
            if sub.category in found:
                continue
            if any(rule.matches(tags) for rule in sub.osm):
                found[sub.category] = sub.key
        if found:
            return list(found.values()), None
        for key in self.osm_keys:
            value = tags.get(key)
            if value is None:
                continue
            first = value.split(";")[0].strip()
            ignored = self.osm_ignore.get(key, frozenset())
            if value in ignored or first in ignored or "*" in ignored:
                continue
            return [], f"{key}={value}"
        return [], None

    # --- BPE -----------------------------------------------------------------------------

    def bpe_subcategory(self, code: str, nomenclature: Nomenclature) -> str | None:
        """Subcategory of a BPE TYPEQU code; ``""`` when the code is deliberately ignored,
        ``None`` when it is unknown."""
        sub = self.bpe_codes[nomenclature].get(code)
        if sub is not None:
            return sub
        if any(fnmatch.fnmatchcase(code, pat) for pat in self.bpe_ignore[nomenclature]):
            return ""
        return None

    # --- chains ---------------------------------------------------------------------------

    def match_banner(self, *values: object) -> str | None:
        """The national banner matching any of ``values`` (brand, name, operator), if any."""
        for value in values:
            norm = normalize_text(value)
            if not norm:
                continue
            if norm in self.banners_exact:
                return self.banners_exact[norm]
            if norm in self.banners_prefix:
                return self.banners_prefix[norm]
            words = norm.split(" ")
            for n in range(len(words) - 1, 0, -1):
                head = " ".join(words[:n])
                if head in self.banners_prefix:
                    return self.banners_prefix[head]
        return None


# --- loading -------------------------------------------------------------------------------

_cache: dict[Path, tuple[float, Categories]] = {}


def load_categories(settings: Settings | None = None, *, path: Path | None = None) -> Categories:
    """Parse and validate the categories file (``settings.categories_file``).

    Raises
    ------
    InputFileError
        The file is missing, not TOML, or inconsistent (unknown category or group, a code
        mapped twice, a code both mapped and ignored, a bad OSM rule), naming the problem.
    """
    s = settings or get_settings()
    file = Path(path or s.categories_file)
    try:
        mtime = file.stat().st_mtime
    except FileNotFoundError:
        raise InputFileError(f"categories file {file} does not exist") from None
    cached = _cache.get(file)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"categories file {file} is not valid TOML: {exc}") from None
    try:
        cats = _build(file, doc)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputFileError(f"categories file {file}: {exc}") from None
    _cache[file] = (mtime, cats)
    return cats


def _build(file: Path, doc: Mapping) -> Categories:
    problems: list[str] = []
    cat_doc = doc.get("categories", {})
    if sorted(cat_doc) != sorted(CATEGORY_KEYS):
        problems.append(
            f"[categories] must define exactly {', '.join(CATEGORY_KEYS)} "
            f"(found {', '.join(cat_doc) or 'none'})"
        )
    labels = {k: str(v.get("label", "")) for k, v in cat_doc.items()}
    groups = {k: dict(v.get("groups", {})) for k, v in cat_doc.items()}

    subs: dict[str, Subcategory] = {}
    bpe_codes: dict[str, dict[str, str]] = {"2013": {}, "2021": {}}
    for i, entry in enumerate(doc.get("subcategories", [])):
        key = entry.get("key", "")
        where = f"subcategory {key or '#' + str(i + 1)}"
        unknown_fields = set(entry) - {"key", "category", "group", "label", "osm", "bpe_2013",
                                       "bpe_2021"}
        if unknown_fields:
            problems.append(f"{where}: unknown field(s) {', '.join(sorted(unknown_fields))}")
        if not _KEY_RE.match(key):
            problems.append(f"{where}: key must be ASCII snake_case")
            continue
        if key in subs or key in labels:
            problems.append(f"{where}: key defined twice")
            continue
        cat, group = entry.get("category"), entry.get("group")
        if cat not in cat_doc:
            problems.append(f"{where}: unknown category {cat!r}")
            continue
        if group not in groups.get(cat, {}):
            problems.append(f"{where}: unknown group {group!r} of category {cat!r}")
        if not entry.get("label"):
            problems.append(f"{where}: missing label")
        try:
            rules = tuple(_parse_rule(r, where) for r in entry.get("osm", []))
        except ValueError as exc:
            problems.append(str(exc))
            rules = ()
        for nom in ("2013", "2021"):
            for code in entry.get(f"bpe_{nom}", []):
                if code in bpe_codes[nom]:
                    problems.append(
                        f"{where}: BPE {nom} code {code} already mapped to {bpe_codes[nom][code]}"
                    )
                bpe_codes[nom][code] = key
        subs[key] = Subcategory(
            key=key, category=cat, group=group, label=str(entry.get("label", "")), osm=rules,
            bpe_2013=tuple(entry.get("bpe_2013", [])), bpe_2021=tuple(entry.get("bpe_2021", [])),
        )
    for cat in CATEGORY_KEYS:
        if cat in cat_doc and not any(s.category == cat for s in subs.values()):
            problems.append(f"category {cat} has no subcategory")

    source_sub = {}
    for src, entry in doc.get("sources", {}).items():
        sub = entry.get("subcategory")
        if sub not in subs:
            problems.append(f"[sources.{src}]: unknown subcategory {sub!r}")
        source_sub[src] = sub

    osm_doc = doc.get("osm", {})
    try:
        exclude = tuple(_parse_rule(r, "[osm] exclude") for r in osm_doc.get("exclude", []))
    except ValueError as exc:
        problems.append(str(exc))
        exclude = ()
    osm_keys = tuple(osm_doc.get("keys", []))
    osm_ignore = {k: frozenset(v) for k, v in osm_doc.get("ignore", {}).items()}

    bpe_doc = doc.get("bpe", {})
    bpe_ignore = {nom: tuple(bpe_doc.get(f"ignore_{nom}", [])) for nom in ("2013", "2021")}
    for nom, patterns in bpe_ignore.items():
        for code, sub in bpe_codes[nom].items():
            if any(fnmatch.fnmatchcase(code, p) for p in patterns):
                problems.append(f"BPE {nom} code {code} is both mapped ({sub}) and ignored")

    chains = doc.get("chains", {})
    exact_names = list(chains.get("exact", []))
    exact = {normalize_text(b): b for b in exact_names}
    prefix = {normalize_text(b): b for b in chains.get("banners", []) if normalize_text(b)
              not in exact}
    if problems:
        raise InputFileError("; ".join(problems))

    anchors = set(osm_keys) | {rule.anchor for sub in subs.values() for rule in sub.osm}
    return Categories(
        path=file,
        version=int(doc.get("version", 1)),
        category_labels=labels,
        groups=groups,
        subcategories=subs,
        source_subcategory=source_sub,
        osm_exclude=exclude,
        osm_keys=osm_keys,
        osm_ignore=osm_ignore,
        bpe_codes=bpe_codes,
        bpe_ignore=bpe_ignore,
        banners_prefix=prefix,
        banners_exact=exact,
        _anchor_keys=frozenset(anchors),
    )
