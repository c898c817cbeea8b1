"""One Euro filter (Casiez, Roussel, Vogel, CHI 2012): low lag when moving, low jitter at rest.

Per value: the cutoff frequency grows with the (low-passed) speed,
``fc = min_cutoff + beta * |dx/dt|``, and the value is low-passed with
``alpha = 1 / (1 + tau / dt)``, ``tau = 1 / (2 pi fc)`` (paper, Eq. 1-4).
"""

from __future__ import annotations

import math

import numpy as np

_DEFAULT_DT = 1.0 / 30.0


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Vector One Euro filter. ``beta`` multiplies the speed in the units of ``speed_scale``.

    ``filter(x, t, speed_scale)``: ``speed_scale`` converts the value's units into the ones
    ``beta`` was tuned for (the stream tracker passes crop px per image px, so the filter
    behaves the same at any camera resolution and face distance).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    @property
    def value(self) -> np.ndarray | None:
        return None if self._x is None else self._x.copy()

    def filter(self, x: np.ndarray, t: float, speed_scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None or self._t is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        if not dt > 0:  # repeated or backwards timestamps: assume one frame at 30 fps
            dt = _DEFAULT_DT
        self._t = float(t) if float(t) > self._t else self._t + dt
        dx = (x - self._x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx) * speed_scale
        tau = 1.0 / (2.0 * math.pi * cutoff)
        a = 1.0 / (1.0 + tau / dt)
        self._x = a * x + (1.0 - a) * self._x
        return self._x.copy()
