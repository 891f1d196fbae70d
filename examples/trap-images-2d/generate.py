"""Synthetic insect-trap images: 80x80 RGB, class 1 when a small insect is on the trap.

The background is a sticky card of random tint under smooth lighting blobs and pixel noise, with
clutter: dark grey round specks and pale streaks (dust, debris). The insect is a small dark-brown
ellipse (3.5 to 5.5 pixels in half-length, any orientation) with a lighter head, anywhere on the card; round
specks of similar darkness are what makes it a shape task rather than a colour one. Pixels are
digitised to 7 bits and divided by 16 (0 to 7.94, exactly what a fixed<8,4> input holds).
"""

import numpy as np

SIZE = 80


def _blob(yy, xx, cy, cx, sy, sx, angle):
    c, s = np.cos(angle), np.sin(angle)
    u = ((xx - cx) * c + (yy - cy) * s) / sx
    v = (-(xx - cx) * s + (yy - cy) * c) / sy
    return u * u + v * v


def generate(n, rng, size=SIZE, noise=0.03):
    """``n`` images (n, size, size, 3) and their classes (0: no insect, 1: insect)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    y = rng.integers(0, 2, n)
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        img = np.broadcast_to(rng.uniform(0.45, 0.8, 3).astype(np.float32), (size, size, 3)).copy()
        for _ in range(rng.integers(2, 6)):  # lighting
            r = _blob(yy, xx, *rng.uniform(0, size, 2), *rng.uniform(8, 25, 2), rng.uniform(0, np.pi))
            img += rng.uniform(-0.2, 0.2) * np.exp(-r / 2)[..., None]
        for _ in range(rng.integers(2, 7)):  # dark round specks
            s = rng.uniform(1.0, 2.2)
            m = 1 / (1 + np.exp(4 * (np.sqrt(_blob(yy, xx, *rng.uniform(0, size, 2), s, s, 0.0)) - 1)))
            img = img * (1 - m[..., None]) + m[..., None] * rng.uniform(0.05, 0.3)
        for _ in range(rng.integers(0, 4)):  # pale streaks
            m = np.exp(-_blob(yy, xx, *rng.uniform(0, size, 2), 0.8, rng.uniform(5, 15), rng.uniform(0, np.pi)) / 2)
            img += 0.25 * m[..., None]
        if y[i]:
            cy, cx = rng.uniform(6, size - 6, 2)
            ang, a = rng.uniform(0, np.pi), rng.uniform(3.5, 5.5)
            m = 1 / (1 + np.exp(4 * (np.sqrt(_blob(yy, xx, cy, cx, a * 0.4, a, ang)) - 1)))
            img = img * (1 - m[..., None]) + m[..., None] * np.array([0.25, 0.12, 0.05]) * rng.uniform(0.6, 1.2)
            hy, hx = cy + a * np.sin(ang), cx + a * np.cos(ang)
            h = 1 / (1 + np.exp(4 * (np.sqrt(_blob(yy, xx, hy, hx, 0.9, 0.9, 0.0)) - 1)))
            img = img * (1 - h[..., None]) + h[..., None] * np.array([0.45, 0.3, 0.15])
        img += rng.normal(0, noise, img.shape)
        out[i] = np.clip(np.round(img * 127), 0, 127) / 16
    return out, y
