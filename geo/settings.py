"""One settings object for the whole pipeline.

Every stage function takes ``settings: Settings | None = None`` and falls back to
:func:`get_settings`. Values come, from lowest to highest priority, from:

1. the defaults below;
2. a TOML file: ``$GEO_SETTINGS_FILE`` if set, else ``pvdgeo.toml`` in the working
   directory if present (keys as below, at top level or under ``[geo]``; relative paths
   are relative to the file's folder);
3. ``GEO_*`` environment variables, e.g. ``GEO_WALK_SPEED_KMH=5``,
   ``GEO_H3_RESOLUTIONS=8,9``, ``GEO_MIRROR=../shared/data`` (an empty value leaves an
   optional setting unset);
4. per call: ``get_settings(walk_speed_kmh=5)`` or ``settings.replace(...)``.

Unknown keys and bad values raise :class:`geo.errors.SettingsError` naming them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo.errors import SettingsError, did_you_mean
from geo.vocab import is_h3_resolution

__all__ = [
    "PROJECT_ROOT",
    "Settings",
    "get_settings",
    "load_settings",
    "reset_settings",
    "set_settings",
]

#: Root of the source checkout (the folder holding ``pyproject.toml`` and ``data/``).
PROJECT_ROOT = Path(__file__).resolve().parents[1]

ENV_PREFIX = "GEO_"

#: Projected CRS per overseas département / collectivité (INSEE department code).
#: Mainland France and Corsica use Lambert-93 (``work_crs``).
_OVERSEAS_CRS = {
    "971": "EPSG:5490",  # Guadeloupe: RGAF09 / UTM zone 20N
    "972": "EPSG:5490",  # Martinique: RGAF09 / UTM zone 20N
    "973": "EPSG:2972",  # Guyane: RGFG95 / UTM zone 22N
    "974": "EPSG:2975",  # La Réunion: RGR92 / UTM zone 40S
    "975": "EPSG:4467",  # Saint-Pierre-et-Miquelon: RGSPM06 / UTM zone 21N
    "976": "EPSG:4471",  # Mayotte: RGM04 / UTM zone 38S
    "977": "EPSG:5490",  # Saint-Barthélemy: RGAF09 / UTM zone 20N
    "978": "EPSG:5490",  # Saint-Martin: RGAF09 / UTM zone 20N
    "986": "EPSG:8903",  # Wallis-et-Futuna: RGWF96 / UTM zone 1S
    "987": "EPSG:3297",  # Polynésie française: RGPF / UTM zone 6S (central islands)
    "988": "EPSG:3163",  # Nouvelle-Calédonie: RGNC91-93 / Lambert New Caledonia
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Pipeline settings. Distances in metres, speeds in km/h, times in minutes."""

    # --- paths -----------------------------------------------------------------
    #: Root of raw, interim and output data.
    data_dir: Path = PROJECT_ROOT / "data"
    #: Dataset catalogue (ids, producers, licences, URLs, mirror paths).
    catalogue_file: Path = PROJECT_ROOT / "data" / "sources.toml"
    #: Facility categories and the source-code mappings.
    categories_file: Path = PROJECT_ROOT / "data" / "categories.toml"
    #: Table de passage between BPE nomenclatures (facility trends across vintages).
    bpe_passage_file: Path = PROJECT_ROOT / "data" / "bpe_passage.toml"
    #: Local mirror of the official sources: a directory or an http(s):// base URL.
    mirror: str | None = None

    # --- coordinate reference systems -----------------------------------------
    #: Metric CRS for computations in mainland France and Corsica (Lambert-93).
    work_crs: str = "EPSG:2154"
    #: Geographic CRS of published layers (GeoJSON, tiles input).
    publish_crs: str = "EPSG:4326"
    #: Metric CRS per overseas département code (overrides ``work_crs`` there).
    overseas_crs: Mapping[str, str] = field(default_factory=lambda: dict(_OVERSEAS_CRS))

    # --- the demo town and reference vintages ---------------------------------
    demo_insee: str = "01306"
    cog_year: int = 2026
    population_year: int = 2023

    # --- travel -----------------------------------------------------------------
    walk_speed_kmh: float = 4.5
    bike_speed_kmh: float = 15.0
    #: Access-time thresholds (minutes) for isochrones and cumulative counts.
    time_thresholds_min: tuple[int, ...] = (5, 10, 15, 20)
    #: Catchment buffer around the town polygon (m). ``None``: the distance the fastest
    #: mode covers in the largest threshold (15 km/h x 20 min = 5,000 m).
    catchment_buffer_m: float | None = None
    #: Facilities farther than this from the street network are reported and left out (m).
    snap_max_m: float = 300.0
    #: Cells or places farther than this from any graph node get no access time (m).
    nearest_node_max_m: float = 2000.0
    #: Subcategories that are access targets besides the six categories.
    access_subcategories: tuple[str, ...] = (
        "medecin_generaliste", "pharmacie", "boulangerie", "ecole", "france_services",
    )
    #: Isochrones: reach off the street (m) and grid resolution (m).
    isochrone_buffer_m: float = 50.0
    isochrone_cell_m: float = 5.0

    # --- aggregation -----------------------------------------------------------
    h3_resolutions: tuple[int, ...] = (8, 9)
    #: APL below this (consultations per inhabitant per year) flags an under-served commune.
    apl_threshold: float = 2.5
    #: E2SFCA catchment time (min) for GPs on foot and by bike; ``None``: the largest
    #: time threshold (20 min). The distance decay reaches 0 at this time.
    e2sfca_catchment_min: float | None = None
    #: Cross-source duplicate facilities: same category within this distance (m).
    dedup_distance_m: float = 50.0
    #: Peers: population band as a ratio around the town's population (0.5 -> x0.5..x2).
    peer_population_ratio: float = 0.5
    #: Peers: attributes a peer shares with the town (``geo.portrait.PEER_CRITERIA``:
    #: programme, centralite, densite, typologie, ruralite, montagne, aav_categorie,
    #: region, departement), besides the population band.
    peer_criteria: tuple[str, ...] = ("programme", "centralite")
    #: Peers: fewer than this many under the rule widens it (documented order).
    peer_min_count: int = 5

    # --- publishing ------------------------------------------------------------
    max_tile_bytes: int = 500_000
    tiles_min_zoom: int = 6
    tiles_max_zoom: int = 15

    # --- downloads ---------------------------------------------------------------
    http_timeout_s: float = 60.0
    http_retries: int = 4
    http_backoff_s: float = 1.0

    # --- derived paths -----------------------------------------------------------
    @property
    def raw_dir(self) -> Path:
        """Downloaded inputs, laid out like the mirror."""
        return self.data_dir / "raw"

    @property
    def interim_dir(self) -> Path:
        """National intermediate tables (commune reference, counts)."""
        return self.data_dir / "interim"

    @property
    def out_dir(self) -> Path:
        """Per-town outputs, one folder per INSEE code."""
        return self.data_dir / "out"

    @property
    def lock_file(self) -> Path:
        """sha256 and provenance of every downloaded file."""
        return self.raw_dir / "sources.lock.json"

    def town_dir(self, insee: str) -> Path:
        """Output folder of one town run (inputs, outputs and logs)."""
        return self.out_dir / insee

    @property
    def catchment_m(self) -> float:
        """Catchment buffer (m): explicit, or the fastest mode x the largest threshold."""
        if self.catchment_buffer_m is not None:
            return float(self.catchment_buffer_m)
        fastest_kmh = max(self.walk_speed_kmh, self.bike_speed_kmh)
        return fastest_kmh * 1000.0 * max(self.time_thresholds_min) / 60.0

    @property
    def e2sfca_minutes(self) -> float:
        """E2SFCA catchment time (min): explicit, or the largest time threshold."""
        if self.e2sfca_catchment_min is not None:
            return float(self.e2sfca_catchment_min)
        return float(max(self.time_thresholds_min))

    def speed_kmh(self, mode: str) -> float:
        """Flat-ground speed of a travel mode (``walk`` or ``bike``) in km/h."""
        if mode == "walk":
            return self.walk_speed_kmh
        if mode == "bike":
            return self.bike_speed_kmh
        raise SettingsError(f"unknown travel mode {mode!r}: expected 'walk' or 'bike'")

    def crs_for_department(self, departement: str) -> str:
        """Metric CRS to compute in for a département code ('01', '2A', '974'...)."""
        return self.overseas_crs.get(str(departement), self.work_crs)

    def replace(self, **overrides: Any) -> Settings:
        """A copy with some values changed (validated like every other source)."""
        return _build({**_as_dict(self), **_coerce_all(overrides, origin="argument")})


# --- validation ------------------------------------------------------------------

_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _as_dict(s: Settings) -> dict[str, Any]:
    return {name: getattr(s, name) for name in _FIELDS}


def _coerce(name: str, value: Any, origin: str) -> Any:
    """Convert ``value`` to the declared type of field ``name`` or raise SettingsError."""
    if name not in _FIELDS:
        raise SettingsError(
            f"unknown setting {name!r} from {origin}{did_you_mean(name, _FIELDS)}; "
            "known settings: "
            + ", ".join(sorted(_FIELDS))
        )
    kind = str(_FIELDS[name].type)
    try:
        if value is None or (isinstance(value, str) and not value.strip() and "None" in kind):
            if "None" in kind:
                return None
            raise ValueError("a value is required")
        if kind.startswith("Path"):
            if not str(value).strip():
                raise ValueError("a path is required, not an empty value")
            return Path(str(value).strip()).expanduser()
        if kind.startswith("str"):
            return _text(value)
        if kind.startswith("bool"):
            if isinstance(value, str):
                if value.lower() in {"1", "true", "yes", "on"}:
                    return True
                if value.lower() in {"0", "false", "no", "off"}:
                    return False
                raise ValueError("expected true or false")
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        if kind.startswith("int"):
            return _integer(value)
        if kind.startswith("float"):
            return _number(value)
        if kind.startswith("tuple[str"):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(_text(v).strip() for v in items if _text(v).strip())
        if kind.startswith("tuple[int"):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(_integer(v.strip() if isinstance(v, str) else v)
                         for v in items if str(v).strip())
        if kind.startswith("Mapping"):
            if isinstance(value, str):
                pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
                if any(len(pair) != 2 for pair in pairs):
                    raise ValueError("expected KEY=VALUE pairs separated by commas")
                value = {k.strip(): v.strip() for k, v in pairs}
            return {_text(k): _text(v) for k, v in dict(value).items()}
    except (TypeError, ValueError) as exc:
        raise SettingsError(
            f"bad value for setting {name!r} from {origin}: {value!r} ({exc}); "
            f"expected {kind}"
        ) from None
    return value


def _text(value: Any) -> str:
    """A string setting: TOML numbers and booleans are refused (``demo_insee = 1306``
    would lose its leading zero, ``mirror = true`` is not a path)."""
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__} (quote it)")
    return value


def _number(value: Any) -> float:
    """A float setting: finite; booleans refused (TOML ``true`` is not 1 km/h)."""
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _integer(value: Any) -> int:
    """An int setting: booleans and fractional numbers refused."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, not true/false")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("expected an integer")
    return int(value)


def _coerce_all(values: Mapping[str, Any], origin: str) -> dict[str, Any]:
    return {k: _coerce(k, v, origin) for k, v in values.items()}


def _validate(s: Settings) -> None:
    problems = []
    for name in ("walk_speed_kmh", "bike_speed_kmh", "snap_max_m", "dedup_distance_m",
                 "isochrone_buffer_m", "isochrone_cell_m",
                 "apl_threshold", "http_timeout_s", "nearest_node_max_m"):
        if not getattr(s, name) > 0:
            problems.append(f"{name} must be > 0 (got {getattr(s, name)!r})")
    if s.e2sfca_catchment_min is not None and not s.e2sfca_catchment_min > 0:
        problems.append(
            f"e2sfca_catchment_min must be > 0 minutes (got {s.e2sfca_catchment_min!r})"
        )
    if s.catchment_buffer_m is not None and s.catchment_buffer_m < 0:
        problems.append(f"catchment_buffer_m must be >= 0 (got {s.catchment_buffer_m!r})")
    if not s.time_thresholds_min or any(t <= 0 for t in s.time_thresholds_min):
        problems.append(
            f"time_thresholds_min must be positive minutes (got {s.time_thresholds_min!r})"
        )
    elif list(s.time_thresholds_min) != sorted(set(s.time_thresholds_min)):
        problems.append(
            f"time_thresholds_min must be increasing (got {s.time_thresholds_min!r})"
        )
    if not s.h3_resolutions or not all(is_h3_resolution(r) for r in s.h3_resolutions):
        problems.append(f"h3_resolutions must be in 0..15 (got {s.h3_resolutions!r})")
    if not 0 < s.peer_population_ratio < 1:
        problems.append(
            f"peer_population_ratio must be in (0, 1) (got {s.peer_population_ratio!r})"
        )
    if s.peer_min_count < 1:
        problems.append(f"peer_min_count must be >= 1 (got {s.peer_min_count!r})")
    if s.http_retries < 0:
        problems.append(f"http_retries must be >= 0 (got {s.http_retries!r})")
    if not 0 <= s.tiles_min_zoom <= s.tiles_max_zoom <= 22:
        problems.append(
            f"tiles zooms must satisfy 0 <= tiles_min_zoom <= tiles_max_zoom <= 22 "
            f"(got {s.tiles_min_zoom}, {s.tiles_max_zoom})"
        )
    for name in ("max_tile_bytes", "http_timeout_s"):
        if not getattr(s, name) > 0:
            problems.append(f"{name} must be > 0 (got {getattr(s, name)!r})")
    if s.http_backoff_s < 0:
        problems.append(f"http_backoff_s must be >= 0 (got {s.http_backoff_s!r})")
    problems += _crs_problems("work_crs", s.work_crs, metric=True)
    problems += _crs_problems("publish_crs", s.publish_crs, metric=False)
    for dep, crs in s.overseas_crs.items():
        if not re.fullmatch(r"9[78]\d", dep):
            problems.append(f"overseas_crs key {dep!r} is not an overseas département or "
                            "collectivité code (971..989)")
        problems += _crs_problems(f"overseas_crs[{dep!r}]", crs, metric=True)
    if s.mirror is not None and not s.mirror.strip():
        problems.append("mirror must be a directory or an http(s):// URL, not empty")
    if s.data_dir.exists() and not s.data_dir.is_dir():
        problems.append(f"data_dir {str(s.data_dir)!r} is a file, not a folder")
    problems += _subcategory_problems(s)
    if problems:
        raise SettingsError("invalid settings: " + "; ".join(problems))


@functools.lru_cache(maxsize=64)
def _crs_problems(name: str, value: str, *, metric: bool) -> tuple[str, ...]:
    """Why ``value`` is not a usable CRS setting: not ``EPSG:nnnn``, unknown to PROJ, or
    (``metric``) not projected in metres."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if not re.fullmatch(r"EPSG:\d{4,6}", str(value).strip().upper()):
        return (f"{name} must be an 'EPSG:nnnn' code (got {value!r})",)
    try:
        crs = CRS.from_user_input(value)
    except CRSError:
        return (f"{name} {value!r} is not a CRS known to PROJ",)
    if metric and not (crs.is_projected and crs.axis_info
                       and crs.axis_info[0].unit_name in {"metre", "meter"}):
        return (f"{name} {value!r} ({crs.name}) is not a projected CRS in metres; "
                "distances and areas are computed in it",)
    return ()


def _subcategory_problems(s: Settings) -> list[str]:
    """Unknown keys in ``access_subcategories`` (checked against the categories file when
    it can be read; a broken file is reported where facilities are read)."""
    from geo._categories import CATEGORY_KEYS, load_categories
    from geo.errors import GeoError

    problems = []
    clash = [k for k in s.access_subcategories if k in CATEGORY_KEYS]
    if clash:
        problems.append(f"access_subcategories {clash} are category keys; access times to "
                        "the six categories are always computed")
    if len(set(s.access_subcategories)) != len(s.access_subcategories):
        problems.append(f"access_subcategories lists a key twice ({s.access_subcategories})")
    try:
        known = load_categories(s, path=s.categories_file).subcategories
    except GeoError:
        return problems
    for key in s.access_subcategories:
        if key not in known and key not in CATEGORY_KEYS:
            problems.append(f"access_subcategories: unknown subcategory {key!r} of "
                            f"{s.categories_file.name}{did_you_mean(key, known)}")
    return problems


def _build(values: Mapping[str, Any]) -> Settings:
    s = Settings(**values)
    _validate(s)
    return s


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"settings file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from None
    return dict(doc.get("geo", doc))


def load_settings(
    *,
    file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from defaults, a TOML file, ``GEO_*`` variables and overrides.

    Parameters
    ----------
    file
        TOML file; default ``$GEO_SETTINGS_FILE`` or ``./pvdgeo.toml`` if it exists.
    environ
        Environment to read ``GEO_*`` variables from (default ``os.environ``).
    overrides
        Highest-priority values, e.g. ``walk_speed_kmh=5``.
    """
    env = os.environ if environ is None else environ
    values = _as_dict(Settings())
    toml_path = file or env.get("GEO_SETTINGS_FILE")
    if toml_path is None and Path("pvdgeo.toml").is_file():
        toml_path = "pvdgeo.toml"
    if toml_path:
        from_file = _coerce_all(_read_toml(Path(toml_path)), origin=f"file {toml_path}")
        for name, value in from_file.items():  # relative paths: relative to the file
            if isinstance(value, Path) and not value.is_absolute():
                from_file[name] = Path(toml_path).parent / value
        values.update(from_file)
    # Variables read by other parts of the tool chain, not settings.
    not_settings = {"GEO_SETTINGS_FILE", "GEO_TEST_DATA", "GEO_LOG_LEVEL"}
    for key, raw in env.items():
        if key.startswith(ENV_PREFIX) and key not in not_settings:
            name = key[len(ENV_PREFIX):].lower()
            values[name] = _coerce(name, raw, origin=f"environment variable {key}")
    values.update(_coerce_all(overrides, origin="argument"))
    return _build(values)


_current: Settings | None = None


def get_settings(**overrides: Any) -> Settings:
    """The process-wide settings (loaded once), optionally with per-call overrides."""
    global _current
    if _current is None:
        _current = load_settings()
    return _current.replace(**overrides) if overrides else _current


def set_settings(settings: Settings) -> None:
    """Replace the process-wide settings (used by the CLI and tests)."""
    global _current
    _current = settings


def reset_settings() -> None:
    """Forget the process-wide settings; the next :func:`get_settings` reloads them."""
    global _current
    _current = None
