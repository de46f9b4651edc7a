"""The table de passage (``data/bpe_passage.toml``, :func:`load_passage`) and the
harmonised types it gives: TYPEQU codes mapped to subcategories
(:func:`bpe_code_subcategories`), renumbered, split, merged and regrouped codes joined into
one type over the vintages (:func:`harmonise`).
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from geo._categories import Categories, load_categories
from geo.errors import InputFileError
from geo.settings import Settings, get_settings

# --- the table de passage --------------------------------------------------------------------

#: Link kinds that join old and new codes into one type, and those that join nothing.
CONNECTING_KINDS = ("renumbered", "split", "merged", "regrouped")
SEPARATE_KINDS = ("redefined", "created", "removed")
_KIND_REASONS = {"redefined": "redéfini", "created": "créé", "removed": "supprimé"}


@dataclass(frozen=True, slots=True)
class Link:
    """One documented change of TYPEQU codes between two nomenclatures."""

    kind: str
    old: tuple[str, ...]
    new: tuple[str, ...]
    label: str
    source: str
    since: int | None = None

    @property
    def connects(self) -> bool:
        """Whether the old and new codes are one type (same scope)."""
        return self.kind in CONNECTING_KINDS


@dataclass(frozen=True)
class Passage:
    """Parsed ``bpe_passage.toml``."""

    path: Path
    version: int
    links: tuple[Link, ...]

    def links_of(self, code: str) -> list[Link]:
        """Links naming ``code`` (old or new side)."""
        return [k for k in self.links if code in k.old or code in k.new]


def load_passage(settings: Settings | None = None, *, path: Path | None = None,
                 categories: Categories | None = None) -> Passage:
    """Read and check the table de passage (default ``settings.bpe_passage_file``).

    Every code must be a TYPEQU code that the categories map to a subcategory, and the
    codes a connecting link joins must map to one subcategory; a problem raises
    :class:`InputFileError` naming the link.
    """
    s = settings or get_settings()
    target = Path(path or s.bpe_passage_file)
    cats = categories or load_categories(s)
    try:
        stat = target.stat()
    except FileNotFoundError:
        raise InputFileError(f"table de passage {target} does not exist") from None
    passage = _read_passage(str(target), stat.st_mtime_ns, stat.st_size)
    code_sub = bpe_code_subcategories(cats)
    problems = []
    for i, link in enumerate(passage.links, start=1):
        where = f"{target} link {i} ({link.kind} {list(link.old)} -> {list(link.new)})"
        unmapped = [c for c in (*link.old, *link.new) if not code_sub.get(c)]
        if unmapped:
            problems.append(f"{where}: code(s) {', '.join(unmapped)} map to no subcategory "
                            "of the categories file")
        elif link.connects and len({code_sub[c] for c in (*link.old, *link.new)}) > 1:
            subs = sorted({code_sub[c] for c in (*link.old, *link.new)})
            problems.append(f"{where}: joins codes of several subcategories ({', '.join(subs)})")
    if problems:
        raise InputFileError("; ".join(problems))
    return passage


@lru_cache(maxsize=4)
def _read_passage(path: str, mtime_ns: int, size: int) -> Passage:
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputFileError(f"table de passage {path}: cannot read it ({exc})") from None
    links, problems = [], []
    for i, entry in enumerate(doc.get("link", []), start=1):
        where = f"{path} link {i}"
        kind = entry.get("kind")
        old, new = tuple(entry.get("old", [])), tuple(entry.get("new", []))
        if kind not in (*CONNECTING_KINDS, *SEPARATE_KINDS):
            problems.append(f"{where}: kind {kind!r} is not one of "
                            + ", ".join((*CONNECTING_KINDS, *SEPARATE_KINDS)))
            continue
        if not all(isinstance(c, str) and len(c) == 4 for c in (*old, *new)):
            problems.append(f"{where}: old and new must be lists of 4-character TYPEQU codes")
            continue
        shape = {"renumbered": len(old) == 1 and len(new) == 1,
                 "split": len(old) == 1 and len(new) > 1,
                 "merged": len(old) > 1 and len(new) == 1,
                 "regrouped": len(old) > 1 and len(new) > 1,
                 "redefined": bool(old) and bool(new),
                 "created": not old and bool(new),
                 "removed": bool(old) and not new}[kind]
        if not shape:
            problems.append(f"{where}: a {kind} link cannot have {len(old)} old and "
                            f"{len(new)} new code(s)")
            continue
        if not entry.get("source"):
            problems.append(f"{where}: source is required")
            continue
        since = entry.get("since")
        links.append(Link(kind=kind, old=old, new=new, label=str(entry.get("label", "")),
                          source=str(entry["source"]),
                          since=int(since) if since is not None else None))
    if problems:
        raise InputFileError("; ".join(problems))
    return Passage(path=Path(path), version=int(doc.get("version", 1)), links=tuple(links))


def bpe_code_subcategories(categories: Categories) -> dict[str, str]:
    """TYPEQU code -> subcategory over both nomenclatures of the categories file
    (``bpe_2013`` and ``bpe_2021``); a code mapped to two subcategories raises."""
    out: dict[str, str] = {}
    for nom in ("2013", "2021"):
        for code, sub in categories.bpe_codes[nom].items():
            if out.setdefault(code, sub) != sub:
                raise InputFileError(
                    f"{categories.path}: BPE code {code} maps to {out[code]} (2013) and to "
                    f"{sub} (2021): the trends need one subcategory per code")
    return out


# --- harmonised types ------------------------------------------------------------------------


@dataclass(frozen=True)
class HarmonisedType:
    """Codes of consecutive vintages that are one equipment type."""

    subcategory: str
    #: vintage year -> TYPEQU codes observed that year, for the years the type spans
    codes: dict[int, tuple[str, ...]]
    #: why the type starts after the first vintage / ends before the last (French)
    starts: str = ""
    ends: str = ""

    @property
    def first(self) -> int:
        """First vintage of the type."""
        return min(self.codes)

    @property
    def last(self) -> int:
        """Last vintage of the type."""
        return max(self.codes)

    @property
    def key(self) -> str:
        """Readable id: codes in order of the vintages, ``A201>A206``."""
        seen: list[str] = []
        for year in sorted(self.codes):
            part = "+".join(self.codes[year])
            if not seen or seen[-1] != part:
                seen.append(part)
        return ">".join(seen)

    def present(self, year: int) -> bool:
        """Whether the type exists in vintage ``year``."""
        return self.first <= year <= self.last

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for metadata and the types table)."""
        return {"type": self.key, "subcategory": self.subcategory,
                "codes": {str(y): list(c) for y, c in sorted(self.codes.items())},
                "first": self.first, "last": self.last, "starts": self.starts,
                "ends": self.ends}


def harmonise(
    observed: Mapping[int, Iterable[str]],
    passage: Passage,
    code_subcategory: Mapping[str, str],
) -> tuple[list[HarmonisedType], list[str]]:
    """Join the codes observed in each vintage into harmonised types.

    Parameters
    ----------
    observed
        Vintage year -> TYPEQU codes with at least one equipment in that vintage (codes
        the categories do not map are ignored).
    passage
        The table de passage: its connecting links join old codes of a vintage to new
        codes of the next; a code observed in two consecutive vintages is one type.

    Returns
    -------
    (types, undocumented): the types ordered by subcategory and first code, and one
    message per code that appears or disappears between two vintages without a link.
    """
    years = sorted(observed)
    nodes: list[tuple[int, str]] = []
    index: dict[tuple[int, str], int] = {}
    for year in years:
        for code in sorted({c for c in observed[year] if code_subcategory.get(c)}):
            index[(year, code)] = len(nodes)
            nodes.append((year, code))
    rows, cols = [], []
    connecting = [k for k in passage.links if k.connects]
    for a, b in itertools.pairwise(years):
        for year, code in nodes:
            if year == a and (b, code) in index:
                rows.append(index[(a, code)])
                cols.append(index[(b, code)])
        for link in connecting:
            for old in link.old:
                for new in link.new:
                    if (a, old) in index and (b, new) in index:
                        rows.append(index[(a, old)])
                        cols.append(index[(b, new)])
    n = len(nodes)
    graph = coo_array((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    members: dict[int, list[tuple[int, str]]] = {}
    for node, label in zip(nodes, labels, strict=True):
        members.setdefault(int(label), []).append(node)
    types, undocumented = [], []
    for group in members.values():
        codes: dict[int, list[str]] = {}
        for year, code in group:
            codes.setdefault(year, []).append(code)
        subs = {code_subcategory[c] for _, c in group}
        if len(subs) > 1:  # a code of two subcategories: excluded by load_passage
            raise InputFileError(f"codes {sorted(c for _, c in group)} of several "
                                 f"subcategories ({', '.join(sorted(subs))}) form one type")
        first, last = min(codes), max(codes)
        starts = ends = ""
        if first != years[0]:
            starts, note = _boundary(passage, codes[first], side="new")
            if note:
                undocumented.append(f"{'+'.join(codes[first])} appears in BPE {first} "
                                    f"({next(iter(subs))}) without a link in the table de "
                                    "passage: not counted as created")
        if last != years[-1]:
            ends, note = _boundary(passage, codes[last], side="old")
            if note:
                undocumented.append(f"{'+'.join(codes[last])} disappears after BPE {last} "
                                    f"({next(iter(subs))}) without a link in the table de "
                                    "passage: not counted as closed")
        types.append(HarmonisedType(
            subcategory=next(iter(subs)), codes={y: tuple(sorted(c)) for y, c in codes.items()},
            starts=starts, ends=ends))
    types.sort(key=lambda t: (t.subcategory, t.first, t.key))
    return types, undocumented


def _boundary(passage: Passage, codes: Sequence[str], *, side: str) -> tuple[str, bool]:
    """Why a type starts (``side="new"``) or ends (``"old"``): the kind of the link naming
    its codes on that side, in French; (reason, undocumented)."""
    for code in codes:
        for link in passage.links_of(code):
            if code in (link.new if side == "new" else link.old):
                if link.connects:
                    return "nomenclature modifiée (codes non observés)", False
                return _KIND_REASONS[link.kind], False
    return "non documenté", True
