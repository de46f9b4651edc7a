"""Travel times per segment: flat speeds from the settings, or slope-aware speeds from a
DEM (Tobler's hiking function for walking, a cycling power model), both
direction-dependent.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geo.errors import InputFileError, MissingCrsError
from geo.network.readers import _transformer

# --- travel time models -------------------------------------------------------------------


def tobler_speed_kmh(slope: np.ndarray | float, flat_kmh: float) -> np.ndarray:
    """Walking speed on a slope (rise over run) by Tobler's hiking function (km/h).

    Tobler (1993): ``6 exp(-3.5 |s + 0.05|)``, rescaled so that flat ground gives
    ``flat_kmh``; fastest at a 5 % descent, symmetric around it.
    """
    s = np.asarray(slope, dtype=float)
    return flat_kmh * np.exp(-3.5 * (np.abs(s + 0.05) - 0.05))


#: Cycling model constants: rider and bicycle mass (kg), rolling resistance coefficient,
#: drag area (m², upright city position), air density (kg/m³), gravity (m/s²).
BIKE_MASS_KG = 90.0
BIKE_CRR = 0.008
BIKE_CDA_M2 = 0.5
AIR_DENSITY = 1.2
GRAVITY = 9.81
#: Sustained power on climbs (W): an everyday cyclist works harder uphill than on the flat.
BIKE_CLIMB_POWER_W = 120.0
#: Speed limit downhill (km/h): riders brake in towns.
BIKE_MAX_KMH = 30.0
#: Below this riding speed (km/h) a cyclist gets off and pushes the bicycle.
BIKE_MIN_RIDE_KMH = 5.0


@functools.lru_cache(maxsize=8)
def _bike_speed_table(flat_kmh: float) -> tuple[np.ndarray, np.ndarray]:
    slopes = np.linspace(-0.5, 0.5, 2001)
    theta = np.arctan(slopes)
    resist = BIKE_MASS_KG * GRAVITY * (np.sin(theta) + BIKE_CRR * np.cos(theta))
    a = 0.5 * AIR_DENSITY * BIKE_CDA_M2
    v0 = flat_kmh / 3.6
    p_flat = v0 * BIKE_MASS_KG * GRAVITY * BIKE_CRR + a * v0**3
    power = np.where(slopes > 0, max(p_flat, BIKE_CLIMB_POWER_W), p_flat)
    v = np.full_like(slopes, 40.0)  # Newton from the right of the largest root: monotone
    for _ in range(60):
        v = v - (a * v**3 + resist * v - power) / (3 * a * v**2 + resist)
    v_kmh = v * 3.6
    v_kmh = np.where(slopes > 0, np.minimum(v_kmh, flat_kmh), v_kmh)
    v_kmh = np.minimum(v_kmh, max(BIKE_MAX_KMH, flat_kmh))
    return slopes, v_kmh


def bike_speed_kmh(
    slope: np.ndarray | float, flat_kmh: float, *, walk_kmh: float = 4.5
) -> np.ndarray:
    """Cycling speed on a slope (rise over run), km/h, from a power balance.

    The rider's power ``P`` balances rolling resistance, gravity and air drag:
    ``P = v m g (sin θ + Crr cos θ) + ½ ρ CdA v³`` (:data:`BIKE_MASS_KG`,
    :data:`BIKE_CRR`, :data:`BIKE_CDA_M2`). On the flat and downhill ``P`` is the power
    that gives ``flat_kmh`` on flat ground, and speed is capped at :data:`BIKE_MAX_KMH`;
    uphill the rider holds :data:`BIKE_CLIMB_POWER_W` but rides no faster than on the
    flat, and where that power gives less than :data:`BIKE_MIN_RIDE_KMH` the cyclist
    pushes the bicycle at walking speed (Tobler, from ``walk_kmh``). Slopes are clipped
    to ±50 %.
    """
    table_s, table_v = _bike_speed_table(float(flat_kmh))
    s = np.clip(np.asarray(slope, dtype=float), -0.5, 0.5)
    ride = np.interp(s, table_s, table_v)
    walk = tobler_speed_kmh(s, walk_kmh)
    return np.where(ride >= BIKE_MIN_RIDE_KMH, np.maximum(ride, walk), walk)


def segment_times(
    xy_a: np.ndarray,
    xy_b: np.ndarray,
    mode: str,
    *,
    flat_kmh: float,
    dem: Dem | None = None,
    flat_mask: np.ndarray | None = None,
    walk_kmh: float = 4.5,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Travel times (s) along straight segments, from a to b and from b to a.

    Without a DEM both are length / flat speed. With a DEM each segment is sampled every
    DEM pixel (at least every 5 m) and every piece gets its own slope; ``flat_mask``
    marks segments timed as flat (bridges and tunnels, whose DEM profile is the ground
    below or above them). ``walk_kmh`` is the flat walking speed (cyclists push their
    bicycle up slopes where walking is faster than riding).

    Returns
    -------
    forward_s, backward_s, n_missing
        Times, and the number of segments without elevation (timed as flat).
    """
    length = np.hypot(*(xy_b - xy_a).T)
    speed_ms = flat_kmh / 3.6
    if dem is None or length.size == 0:
        t = length / speed_ms
        return t, t.copy(), 0
    step = max(dem.pixel_m, 5.0)
    n_sub = np.maximum(1, np.ceil(length / step).astype(np.int64))
    seg_of_piece = np.repeat(np.arange(length.size), n_sub)
    start = np.cumsum(n_sub) - n_sub
    k = np.arange(n_sub.sum()) - np.repeat(start, n_sub)
    frac0 = k / n_sub[seg_of_piece]
    frac1 = (k + 1) / n_sub[seg_of_piece]
    d = xy_b - xy_a
    p0 = xy_a[seg_of_piece] + d[seg_of_piece] * frac0[:, None]
    p1 = xy_a[seg_of_piece] + d[seg_of_piece] * frac1[:, None]
    z0 = dem.sample(p0)
    z1 = dem.sample(p1)
    piece_len = length[seg_of_piece] / n_sub[seg_of_piece]
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(piece_len > 0, (z1 - z0) / piece_len, 0.0)
    missing_piece = ~np.isfinite(slope)
    missing_seg = np.zeros(length.size, dtype=bool)
    np.logical_or.at(missing_seg, seg_of_piece, missing_piece)
    slope[missing_piece] = 0.0
    if flat_mask is not None:
        slope[flat_mask[seg_of_piece]] = 0.0
    if mode == "walk":
        v_up, v_down = tobler_speed_kmh(slope, flat_kmh), tobler_speed_kmh(-slope, flat_kmh)
    else:
        v_up = bike_speed_kmh(slope, flat_kmh, walk_kmh=walk_kmh)
        v_down = bike_speed_kmh(-slope, flat_kmh, walk_kmh=walk_kmh)
    fwd = np.add.reduceat(piece_len / (v_up / 3.6), start)
    bwd = np.add.reduceat(piece_len / (v_down / 3.6), start)
    return fwd, bwd, int(missing_seg.sum())


@dataclass(frozen=True, eq=False)
class Dem:
    """Elevation raster window (metres) with bilinear sampling in a graph's CRS."""

    values: np.ndarray
    transform: Any
    crs: str
    graph_crs: str
    pixel_m: float
    path: str

    @classmethod
    def read(cls, path: str | Path, *, bounds: Sequence[float], crs: str) -> Dem:
        """The part of DEM ``path`` covering ``bounds`` (xmin, ymin, xmax, ymax in ``crs``).

        Raises :class:`InputFileError` when the file cannot be read or does not overlap.
        """
        import rasterio
        from rasterio.windows import from_bounds

        path = Path(path)
        if not path.is_file():
            raise InputFileError(f"DEM file {path} does not exist")
        try:
            with rasterio.open(path) as src:
                if src.crs is None:
                    raise MissingCrsError(f"DEM {path} has no CRS")
                dem_crs = src.crs.to_string()
                xs = [bounds[0], bounds[2], bounds[0], bounds[2]]
                ys = [bounds[1], bounds[1], bounds[3], bounds[3]]
                tx, ty = _transformer(crs, dem_crs).transform(xs, ys)
                res = max(abs(src.res[0]), abs(src.res[1]))
                left, right = min(tx) - 2 * res, max(tx) + 2 * res
                bottom, top = min(ty) - 2 * res, max(ty) + 2 * res
                sb = src.bounds
                if left >= sb.right or right <= sb.left or bottom >= sb.top or top <= sb.bottom:
                    raise InputFileError(
                        f"DEM {path} (bounds {tuple(round(v, 4) for v in sb)} in {dem_crs}) "
                        f"does not cover the street graph"
                    )
                window = from_bounds(max(left, sb.left), max(bottom, sb.bottom),
                                     min(right, sb.right), min(top, sb.top), src.transform)
                window = window.round_offsets().round_lengths()
                band = src.read(1, window=window, masked=True).astype(float)
                values = band.filled(np.nan)
                transform = src.window_transform(window)
                if src.crs.is_geographic:
                    lat = np.radians((bottom + top) / 2)
                    pixel_m = min(abs(src.res[0]) * 111_320 * np.cos(lat),
                                  abs(src.res[1]) * 110_574)
                else:
                    pixel_m = min(abs(src.res[0]), abs(src.res[1]))
        except rasterio.errors.RasterioError as exc:
            raise InputFileError(f"cannot read DEM {path}: {exc}") from None
        return cls(values=values, transform=transform, crs=dem_crs, graph_crs=crs,
                   pixel_m=float(pixel_m), path=str(path))

    def sample(self, xy: np.ndarray) -> np.ndarray:
        """Bilinear elevation at points ``xy`` (graph CRS); NaN outside or on nodata."""
        from scipy.ndimage import map_coordinates

        x, y = _transformer(self.graph_crs, self.crs).transform(xy[:, 0], xy[:, 1])
        inv = ~self.transform
        x, y = np.asarray(x), np.asarray(y)
        col = inv.a * x + inv.b * y + inv.c
        row = inv.d * x + inv.e * y + inv.f
        # pixel centres are at +0.5
        coords = np.vstack([np.asarray(row) - 0.5, np.asarray(col) - 0.5])
        return map_coordinates(self.values, coords, order=1, mode="constant", cval=np.nan)
