"""Reuse-factor schedules of dense and convolution layers: which factors are exact, and what each
cycle computes. Pure arithmetic, shared by the passes, the configuration generator and the layers."""

from __future__ import annotations

import math

__all__ = ["reuse_plan", "valid_reuse_factors", "conv_reuse_plan", "valid_conv_reuse_factors"]


def reuse_plan(n_in: int, n_out: int, reuse_factor: int) -> tuple[int, int, int]:
    """``(inputs per cycle, outputs per cycle, cycles)`` for a reuse factor.

    Up to ``n_in`` cycles, each cycle takes a chunk of inputs for every output; beyond, one input
    per cycle for a group of outputs (hls4ml's reuse factors up to ``n_in * n_out``). ``cycles`` is
    below ``reuse_factor`` when the factor does not split the layer evenly.
    """
    if reuse_factor <= n_in:
        per_in = math.ceil(n_in / reuse_factor)
        return per_in, n_out, math.ceil(n_in / per_in)
    groups = min(math.ceil(reuse_factor / n_in), n_out)
    per_out = math.ceil(n_out / groups)
    return 1, per_out, n_in * math.ceil(n_out / per_out)


def valid_reuse_factors(n_in: int, n_out: int) -> list[int]:
    """Reuse factors that give exactly R cycles per vector for an ``n_in`` x ``n_out`` dense layer."""
    small = {reuse_plan(n_in, n_out, r)[2] for r in range(1, n_in + 1)}
    large = {n_in * math.ceil(n_out / s) for s in range(1, n_out + 1)}
    return sorted(small | large)


def conv_reuse_plan(positions: int, keys: int, reuse_factor: int) -> tuple[int, int, int, int]:
    """``(positions per cycle, keys per cycle, position groups, key chunks)`` for a reuse factor.

    The schedule takes ``position groups * key chunks`` cycles, the largest achievable number not
    above ``reuse_factor``: up to ``positions`` cycles whole positions are grouped; beyond, one
    position per cycle with its keys split into chunks (at most ``positions * keys`` cycles).
    """
    if not 1 <= reuse_factor <= positions * keys:
        raise ValueError(
            f"reuse factor must be between 1 and {positions * keys} ({positions} positions x {keys} "
            f"kernel terms), not {reuse_factor}"
        )
    if reuse_factor <= positions:
        per_pos = math.ceil(positions / reuse_factor)
        return per_pos, keys, math.ceil(positions / per_pos), 1
    per_key = math.ceil(keys / (reuse_factor // positions))
    return 1, per_key, positions, math.ceil(keys / per_key)


def valid_conv_reuse_factors(positions: int, keys: int) -> list[int]:
    """Reuse factors that give exactly that many cycles per vector."""
    small = {math.ceil(positions / s) for s in range(1, positions + 1)}
    large = {positions * math.ceil(keys / k) for k in range(1, keys + 1)}
    return sorted(small | large)
