"""Card stage: the town card (``town.json``) and its catchment (``catchment.parquet``).

The catchment (the town polygon buffered by ``settings.catchment_m`` and the communes it
touches) is computed here, once; every later stage reads it from the town folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from geo import communes, sources
from geo._io import write_json_atomic
from geo.errors import InputFileError
from geo.settings import Settings
from geo.stages._core import Stage

__all__ = ["CARD_FILE", "STAGE", "read_card", "run"]

CARD_FILE = "town.json"


def run(insee: str, *, out_dir: Path, settings: Settings) -> list[Path]:
    """Write ``town.json`` and ``catchment.parquet`` into ``out_dir``; a file whose content
    is unchanged is left as it is (later stages and make see no change)."""
    code = communes.resolve_insee(insee, settings)
    out_dir = Path(out_dir)
    written: list[Path] = []
    try:
        c = communes.catchment(code, settings=settings)
    except InputFileError:
        c = None  # town_card logs why; the later stages say what they cannot build
    card = communes.town_card(code, town_catchment=c, settings=settings)
    path = out_dir / CARD_FILE
    text = json.dumps(card, ensure_ascii=False, indent=2, default=str) + "\n"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_json_atomic(path, card)
    written.append(path)
    if c is not None:
        written.append(communes.write_catchment(c, out_dir / communes.CATCHMENT_FILE))
    else:
        (out_dir / communes.CATCHMENT_FILE).unlink(missing_ok=True)
    return written


def read_card(folder: Path) -> dict:
    """The card of a town folder (``town.json``)."""
    path = Path(folder) / CARD_FILE
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise InputFileError(f"town card {path} does not exist (card stage)") from None
    except ValueError as exc:
        raise InputFileError(f"town card {path} is not valid JSON: {exc}") from None


def _datasets(insee: str, folder: Path, s: Settings) -> list[str]:
    local = [d.id for d in sources.datasets_for_town(insee, settings=s)]
    return [*communes.REFERENCE_DATASETS, "communes_polygons", *local]


def _national(s: Settings) -> list[Path]:
    return [s.interim_dir / "communes.parquet"]


STAGE = Stage(
    name="card",
    description="town card and catchment",
    modules=("geo.stages.card",),
    run=run,
    datasets=_datasets,
    national=_national,
    produces=(CARD_FILE, communes.CATCHMENT_FILE),
)
