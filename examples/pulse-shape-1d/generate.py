"""Synthetic detector pulses for pulse-shape discrimination: 30 ADC samples, 4 classes.

Each class is a pulse shape, exp(-t/decay) (1 - exp(-t/rise)), with its own rise and decay time
(fast/slow rise x short/long decay), drawn with jittered time constants, a random arrival time,
amplitudes over a decade, a baseline offset and Gaussian noise, then digitised by a 7-bit ADC that
saturates at full scale. Inputs are the ADC codes divided by 16 (0 to 7.94 in steps of 1/16, what
an 8-bit fixed<8,4> input holds exactly).
"""

import numpy as np

SAMPLES = 30
# (rise, decay) time constants in samples, per class.
SHAPES = ((0.5, 2.5), (0.5, 8.0), (2.5, 2.5), (2.5, 8.0))


def generate(n, rng, jitter=0.1, noise=0.8):
    """``n`` pulses and their classes (0-3) from the generator ``rng``."""
    y = rng.integers(0, len(SHAPES), n)
    shapes = np.array(SHAPES)[y]
    rise = shapes[:, 0] * np.exp(rng.normal(0, jitter, n))
    decay = shapes[:, 1] * np.exp(rng.normal(0, jitter, n))
    t0 = rng.uniform(3.0, 8.0, n)
    amp = np.exp(rng.uniform(np.log(20.0), np.log(160.0), n))
    t = np.arange(SAMPLES)[None, :] - t0[:, None]
    tp = np.clip(t, 0, None)
    pulse = np.exp(-tp / decay[:, None]) * (1.0 - np.exp(-tp / rise[:, None]))
    pulse /= pulse.max(axis=1, keepdims=True)
    base = rng.uniform(2.0, 6.0, n)[:, None]
    codes = np.round(base + amp[:, None] * pulse + rng.normal(0, noise, (n, SAMPLES)))
    codes = np.clip(codes, 0, 127)
    return (codes / 16).astype(np.float32), y
