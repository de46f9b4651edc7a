"""Colour-vision checks for map legends: CIELAB lightness and colour-blindness simulation.

Simulation: Machado, Oliveira & Fernandes (2009), "A physiologically-based model for
simulation of color vision deficiency", matrices for severity 1.0, applied to linear
sRGB. Differences: CIE76 delta E in CIELAB (D65).
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["SIMULATIONS", "delta_e", "lightness", "min_pairwise_delta_e", "simulate"]

SIMULATIONS = {
    "normale": np.eye(3),
    "protanopie": np.array([[0.152286, 1.052583, -0.204868],
                            [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deutéranopie": np.array([[0.367322, 0.860646, -0.227968],
                              [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopie": np.array([[1.255528, -0.076749, -0.178779],
                            [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}

_M_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                   [0.2126729, 0.7151522, 0.0721750],
                   [0.0193339, 0.1191920, 0.9503041]])
_WHITE = np.array([0.95047, 1.0, 1.08883])


def _linear(hex_colour: str) -> np.ndarray:
    h = hex_colour.lstrip("#")
    rgb = np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)]) / 255.0
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def _lab(linear_rgb: np.ndarray) -> np.ndarray:
    xyz = _M_XYZ @ np.clip(linear_rgb, 0, 1) / _WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def simulate(hex_colour: str, kind: str) -> np.ndarray:
    """CIELAB of a colour as seen with a colour-vision deficiency (or ``normale``)."""
    return _lab(SIMULATIONS[kind] @ _linear(hex_colour))


def lightness(hex_colour: str) -> float:
    """CIELAB L* (0 black .. 100 white)."""
    return float(simulate(hex_colour, "normale")[0])


def delta_e(a: str, b: str, kind: str = "normale") -> float:
    """CIE76 difference between two colours under a simulated vision."""
    return float(np.linalg.norm(simulate(a, kind) - simulate(b, kind)))


def min_pairwise_delta_e(colours: list[str], kind: str) -> float:
    """Smallest difference between any two of ``colours`` under ``kind`` vision."""
    return min(delta_e(a, b, kind) for a, b in itertools.combinations(colours, 2))
