"""Constant matrix-vector products as shift-add adder graphs.

A dense layer with constant weights needs no multiplier: every weight is written in canonical signed
digits (CSD, at most one non-zero digit in two), so ``x * w`` is a handful of shifted copies of ``x``
added or subtracted. Every output is then a sum of signed, shifted input terms. Pairs of terms that
occur in several outputs (the same two inputs at the same relative shift and sign) are computed once
and shared: the classic greedy common-subexpression elimination over two-term patterns. What is left
of every output is summed by a tree: of several join orders (earliest-ready first, narrowest first,
added and subtracted terms apart), the one that needs the fewest LUTs on carry chains and no more
pipeline stages than the layer needs anyway. On a carry chain an addition costs a LUT only where
both operands have bits, so sums of non-negative terms are cheap and sign extension is not; signed
input lanes may therefore enter in offset binary (their top bit inverted, the offset moved into
the output's constant), and so may every signed intermediate sum where it is read (a shared
``x_i - (x_j << k)`` of non-negative lanes is signed): the offsets go into the outputs' constants,
and an inversion read alone is made inside the adder that computes the sum, at no cost.

Zero weights and zero digits never appear, so pruning and narrow per-weight widths (HGQ2) make the
graph smaller by themselves. Every node knows the exact integer interval it can take, so each adder
is as wide as its values need and never overflows; the low bits below a shifted operand pass
through without an adder.

Inputs that only take two values ``lo`` and ``hi`` (bipolar activations, binary inputs) become one
bit ``b`` with ``x = lo + (hi - lo) * b``; a subtracted bit is the added complement minus a
constant, so a layer with weights in {-1, 0, 1} on such inputs is a popcount of XNORs plus a
constant: no multiplier, no subtraction.

:class:`AdderGraph` is the pure-Python plan (counts, depths, widths); the pipelined Amaranth
component built from it is :class:`rtlgen.layers._adders.AdderGraphLayer`.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import heapq
import multiprocessing
import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["AdderGraph", "csd", "csd_digits", "plan_adder_graph", "plan_adder_graphs", "lut_estimate", "lane_bounds"]

# Columns with more terms than this are shared within blocks of inputs of about this many terms.
BLOCK_TERMS = 96
# Among equally frequent patterns, this many are compared to pick the closest and narrowest.
PICK = 64
# Orders (levels, split, pair) of the output trees tried besides the least-depth one (see _Planner.tree).
TREE_ORDERS = ((1, True, False), (2, True, False), (1, True, True), (2, True, True), (3, True, True))
# Columns with more terms than this are not summed in the cheapest-pair orders (their time grows
# with the square of the terms).
PAIR_TERMS = 96
# Layers with at most this many CSD digits are also planned with signed lanes in offset binary.
OFFSET_DIGITS = 50_000
# LUTs an operand with an inverted top bit costs: the inversion merges into the LUT of an adder
# bit where both operands have bits, but a bit passed alone to the carry chain (or to its DI
# input) needs a LUT of its own.
FLIP_LUTS = 1
CSE_FLIP = True
# Signals summing more sources than this get interval ranges (see _Planner.form).
FORM_SOURCES = 32


def csd(v: int) -> list[tuple[int, int]]:
    """The canonical signed-digit form of ``v`` as ``[(shift, sign), ...]`` (fewest non-zero digits)."""
    out = []
    v = int(v)
    k = 0
    while v:
        if v & 1:
            d = 2 - (v & 3)  # +1 when v = 1 mod 4, -1 when v = 3 mod 4
            out.append((k, d))
            v -= d
        v >>= 1
        k += 1
    return out


# Weights are also planned in other minimal signed-digit forms (see _Planner.choose_digits),
# once per number of passes over the weights that choose them (plans differ by about 1 %).
MSD = True
MSD_ROUNDS = (2,)
# Forms compared per weight, and the pattern counts the choice may read per layer (about a
# second): wide weights (16 bits) have dozens of forms and long columns, and gain little.
MSD_FORMS = 4
MSD_KEYS = 1_500_000
# Layers are planned on every core when the plans to make have at least this many CSD digits.
PARALLEL_DIGITS = 3000
# Networks with at most this many digits plan their canonical forms alongside the others.
SPECULATE_DIGITS = 20_000


@functools.lru_cache(maxsize=4096)
def msd(v: int) -> tuple:
    """Every signed-digit form of ``v`` with as few non-zero digits as :func:`csd`'s, each as
    ``((shift, sign), ...)`` by shift."""
    best = len(csd(v))
    out = set()

    def rec(v, k, acc):
        if len(acc) > best:
            return
        if v == 0:
            out.add(tuple(acc))
        elif v % 2 == 0:
            rec(v // 2, k + 1, acc)
        else:
            for d in (1, -1):
                rec((v - d) // 2, k + 1, acc + [(k, d)])

    rec(int(v), 0, [])
    return tuple(sorted(out))


def csd_digits(w) -> int:
    """Non-zero canonical-signed-digit digits of all of ``w`` (integers), without listing them:
    the size of the adder graph before sharing, and what planning it costs."""
    w = np.asarray(w)
    if w.dtype == object and w.size and int(np.abs(w).max()) >= 1 << 61:
        return sum(len(csd(int(v))) for v in w.ravel() if v)  # beyond int64 (weights on a shifted grid)
    a = np.abs(w.astype(np.int64)).ravel()
    return int(np.bitwise_count(((3 * a) ^ a) >> 1).sum())


# An addition's lowest chain bit takes one operand's bit as the carry-in (a one-bit summand the
# synthesis tools put on the chain's carry input), so that bit needs no LUT: one LUT less per
# addition on Xilinx carry chains, the same on iCE40's. Subtractions use the carry-in for their +1.
CARRY_IN = True


def _lut_cost(plo, phi, qlo, qhi, d, sp, sq, lo, hi) -> int:
    """LUTs of ``sp * P + sq * (Q << d)`` on a carry chain, one per result bit that needs one.

    An addition needs a LUT only where both operands have bits: above a non-negative operand's
    width its bits are constant zeros, and the chain passes the other operand's bit and the carry
    for free (a signed operand extends its sign over the whole result); and not at bit d when P
    has a bit there, which enters as the carry-in (:data:`CARRY_IN`). A subtraction inverts one
    operand, so it needs a LUT wherever either has bits. The bits below ``d`` of a positive base
    are wires."""
    w = _bits(lo, hi)[0]
    wp, p_signed = _bits(plo, phi)
    wq, q_signed = _bits(qlo, qhi)
    p_end = w if p_signed else min(wp, w)
    q_end = w if q_signed else min(d + wq, w)
    if sp > 0 and sq > 0:
        if CARRY_IN and plo != phi and d < min(wp, w):
            # P's bit d enters as the chain's carry-in: the lowest bit where both operands have
            # bits then needs no LUT.
            return min(p_end, q_end) - d - 1
        return max(min(p_end, q_end) - d, 1)
    start = d if sp > 0 else 0
    a = max(p_end - start, 0)
    b = max(q_end - max(d, start), 0)
    both = max(min(p_end, q_end) - max(d, start), 0)
    return max(a + b - both, 1)


def _bits(lo: int, hi: int) -> tuple[int, bool]:
    """(width, signed) of the narrowest two's-complement shape holding ``[lo, hi]``."""
    if lo >= 0:
        return max(hi.bit_length(), 1), False
    return max(hi.bit_length(), (-lo - 1).bit_length()) + 1, True


@dataclass
class AdderGraph:
    """A plan of additions for ``y[o] = sum_i x[i] * W[i, o] + bias[o]``.

    Signals are numbered: first the sources (input lanes, bits of two-valued lanes, constants),
    then one per adder. Source kinds: ``("in", lane, k)`` (the lane shifted right by ``k`` bits that
    are always zero), ``("off", lane, k, w)`` (the same with its bit ``w - 1`` inverted: plus
    ``2**(w-1)``, for a lane whose shifted values fit ``w`` signed bits), ``("bit", lane, bit, invert)``,
    ``("const", value)``. An adder is ``(p, sp, q, sq, d)``: ``sp * P + sq * (Q << d)`` with
    ``d >= 0``; with ``sq == 0`` it is no adder but ``P`` with its bit ``d - 1`` inverted (``P``
    fits ``d`` signed bits: ``P + 2**(d-1)``, never negative; the inversion costs nothing, as it
    merges into the LUT of the adder that reads it). Each output is ``None`` (zero) or
    ``(signal, shift, sign)``.
    """

    sources: list = field(default_factory=list)
    adders: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    lo: list = field(default_factory=list)
    hi: list = field(default_factory=list)
    depth: list = field(default_factory=list)

    @property
    def n_sources(self) -> int:
        return len(self.sources)

    @property
    def n_adders(self) -> int:
        return sum(1 for a in self.adders if a[3])

    @property
    def max_depth(self) -> int:
        return max((self.depth[o[0]] for o in self.outputs if o is not None), default=0)

    def width(self, s: int) -> int:
        return _bits(self.lo[s], self.hi[s])[0]

    def adder_bits(self) -> int:
        """Full-adder bits over all adders (the bits below a shifted operand are wires)."""
        total = 0
        for k, (_, sp, _, sq, d) in enumerate(self.adders):
            s = self.n_sources + k
            total += max(self.width(s) - (d if sp > 0 else 0), 1) if sq else 0
        return total

    def merged_flips(self) -> set:
        """The adders ``k`` whose results are only read with inverted top bits (by one flip):
        the flip is then the adder itself with one operand's top bit inverted, which merges
        into that bit's LUT."""
        n = self.n_sources
        readers: dict = {}
        for k, (p, _, q, sq, _) in enumerate(self.adders):
            for x in {p, q} if sq else {p}:
                readers.setdefault(x, []).append(k)
        for ref in self.outputs:
            if ref is not None:
                readers.setdefault(ref[0], []).append(None)
        out = set()
        for p, _, _, sq, _ in self.adders:
            if sq == 0 and p >= n and len(readers.get(p, ())) == 1 and self.adders[p - n][1] > 0:
                out.add(p - n)
        return out

    def inverters(self) -> list:
        """The flips ``k`` that are inverters of their own (of a source, or of an adder read
        elsewhere as well)."""
        merged = self.merged_flips()
        n = self.n_sources
        return [k for k, a in enumerate(self.adders) if a[3] == 0 and a[0] - n not in merged]

    def lut_cost(self) -> int:
        """LUTs of the adders on carry chains (:func:`_lut_cost`), and one per operand with an
        inverted top bit (:data:`FLIP_LUTS`)."""
        g, n = self, self.n_sources
        flipped = {n + k for k in self.inverters()}
        return sum(
            _lut_cost(g.lo[p], g.hi[p], g.lo[q], g.hi[q], d, sp, sq, g.lo[n + k], g.hi[n + k])
            + FLIP_LUTS * ((p in flipped) + (q in flipped))
            if sq else 0
            for k, (p, sp, q, sq, d) in enumerate(self.adders)
        )  # fmt: skip

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """The outputs for input mantissas ``x`` (batch, lanes) computed along the graph, exactly."""
        x = np.asarray(x).astype(object)
        vals = []
        for src in self.sources:
            if src[0] == "in":
                vals.append(x[:, src[1]] >> src[2])
            elif src[0] == "off":
                vals.append((x[:, src[1]] >> src[2]) + (1 << (src[3] - 1)))
            elif src[0] == "bit":
                b = (x[:, src[1]] >> src[2]) & 1
                vals.append(1 - b if src[3] else b)
            else:
                vals.append(np.full(len(x), src[1], dtype=object))
        for p, sp, q, sq, d in self.adders:
            vals.append(sp * vals[p] + sq * (vals[q] << d) if sq else vals[p] + (1 << (d - 1)))
        out = np.zeros((len(x), len(self.outputs)), dtype=object)
        for o, ref in enumerate(self.outputs):
            if ref is not None:
                s, sh, g = ref
                out[:, o] = g * (vals[s] << sh)
        return out


class _Planner:
    """Greedy two-term common-subexpression elimination, then depth-first output trees."""

    def __init__(self, graph: AdderGraph, columns: list[dict]):
        self.g = graph
        self.cols = columns  # per output (or per output and input block): {(signal, shift): sign}
        self.group = {}  # source signal -> its block of inputs
        self.count: dict = {}
        # Per signal, ``({source: coefficient}, constant)``: the signal as an exact linear form of
        # the sources, or None once it has too many sources to be worth tracking. Interval sums
        # overestimate a sum whose two sides share a source (x * 3 - x * 4 is not in
        # [3 lo - 4 hi, 3 hi - 4 lo]); the form gives the exact range, so the adder is narrower.
        self.form: list = []
        self.flips: dict = {}  # signal -> the signal with its top bit inverted
        self.offset: dict = {}  # shared pattern -> its value less the value it stands for
        self.cse_flip = CSE_FLIP
        self.offset_only: dict = {}  # output -> its constant term, there only for the offsets
        self.counted = False  # self.count already holds the columns' pattern counts

    # -- signals ------------------------------------------------------------------------------------

    def add_source(self, kind, lo, hi) -> int:
        g = self.g
        g.sources.append(kind)
        g.lo.append(lo)
        g.hi.append(hi)
        g.depth.append(0)
        s = len(g.sources) - 1
        self.form.append(({}, lo) if kind[0] == "const" else ({s: 1}, 0))
        return s

    def exact_range(self, p, sp, q, sq, d):
        """The form of ``sp * P + sq * (Q << d)`` and its exact range, when P and Q share a source
        (else None: their intervals add exactly)."""
        fp, fq = self.form[p], self.form[q]
        if fp is None or fq is None or sq == 0 or fp[0].keys().isdisjoint(fq[0].keys()):
            return None
        coef = {v: sp * c for v, c in fp[0].items()}
        for v, c in fq[0].items():
            coef[v] = coef.get(v, 0) + sq * (c << d)
        const = sp * fp[1] + sq * (fq[1] << d)
        lo = hi = const
        g = self.g
        for v, c in coef.items():
            if c > 0:
                lo, hi = lo + c * g.lo[v], hi + c * g.hi[v]
            elif c < 0:
                lo, hi = lo + c * g.hi[v], hi + c * g.lo[v]
        return (coef, const), lo, hi

    def combined_form(self, p, sp, q, sq, d):
        fp, fq = self.form[p], self.form[q] if sq else ({}, 0)
        if fp is None or fq is None or len(fp[0]) + len(fq[0]) > FORM_SOURCES:
            return None
        coef = {v: sp * c for v, c in fp[0].items()}
        for v, c in fq[0].items():
            coef[v] = coef.get(v, 0) + sq * (c << d)
        return coef, sp * fp[1] + sq * (fq[1] << d)

    def add_adder(self, p, sp, q, sq, d) -> int:
        g = self.g
        a = (g.lo[p], g.hi[p]) if sp > 0 else (-g.hi[p], -g.lo[p])
        if sq == 0:
            b = (0, 0)
        elif sq > 0:
            b = (g.lo[q] << d, g.hi[q] << d)
        else:
            b = (-(g.hi[q] << d), -(g.lo[q] << d))
        g.adders.append((p, sp, q, sq, d))
        exact = self.exact_range(p, sp, q, sq, d)
        if exact is None:
            g.lo.append(a[0] + b[0])
            g.hi.append(a[1] + b[1])
            self.form.append(self.combined_form(p, sp, q, sq, d))
        else:
            form, lo, hi = exact
            g.lo.append(lo)
            g.hi.append(hi)
            self.form.append(form if len(form[0]) <= FORM_SOURCES else None)
        g.depth.append(1 + max(g.depth[p], g.depth[q]))
        return len(g.lo) - 1

    def add_flip(self, p) -> int:
        """``P`` with its top bit inverted: ``P + 2**(w-1)`` for ``P`` of ``w`` signed bits."""
        g = self.g
        w = _bits(g.lo[p], g.hi[p])[0]
        off = 1 << (w - 1)
        g.adders.append((p, 1, p, 0, w))
        g.lo.append(g.lo[p] + off)
        g.hi.append(g.hi[p] + off)
        g.depth.append(g.depth[p])
        f = self.form[p]
        self.form.append(None if f is None else (f[0], f[1] + off))
        return len(g.lo) - 1

    def flip_of(self, p) -> int:
        f = self.flips.get(p)
        if f is None:
            f = self.flips[p] = self.add_flip(p)
        return f

    def is_const(self, s) -> bool:
        g = self.g
        return g.sources[s][0] == "const" if s < g.n_sources else isinstance(g.adders[s - g.n_sources][0], str)

    def const(self, v) -> int:
        """A constant source (a late one once there are adders: their numbers are taken)."""
        self.const_sig = self.add_late_const(v) if self.g.adders else self.add_source(("const", v), v, v)
        return self.const_sig

    def add_late_const(self, c) -> int:
        """A constant made after the adders: numbered as one until :func:`_hoist_constants`."""
        g = self.g
        g.adders.append(("const", c))
        g.lo.append(c)
        g.hi.append(c)
        g.depth.append(0)
        self.form.append(({}, c))
        return len(g.lo) - 1

    # -- pair patterns ------------------------------------------------------------------------------

    @staticmethod
    def key(t1, t2):
        """The shift-free pattern of two terms ``((sig, shift), sign)``: lower shift first."""
        (a, sa), ga = t1
        (b, sb), gb = t2
        if (sa, a) > (sb, b):
            a, sa, ga, b, sb, gb = b, sb, gb, a, sa, ga
        return (a, b, sb - sa, ga * gb)

    def bump(self, k, n):
        count = self.count
        c0 = count.get(k, 0)
        c = c0 + n
        count[k] = c
        if c0 >= 2:
            del self.buckets[c0][k]
        if c >= 2:
            self.buckets.setdefault(c, {})[k] = None
            if c > self.top:
                self.top = c

    def count_column(self, col: dict):
        items = sorted(((sh, sig, g) for (sig, sh), g in col.items()))
        count = self.count
        for i, (sa, a, ga) in enumerate(items):
            for sb, b, gb in items[i + 1 :]:
                k = (a, b, sb - sa, ga * gb)
                count[k] = count.get(k, 0) + 1

    def term_pairs(self, col: dict, t, sign: int):
        """Count (``sign`` = +1) or uncount (-1) the pairs of term ``t`` with the column's terms."""
        (a, sa), ga = t
        bump = self.bump
        for (b, sb), gb in col.items():
            if b == a and sb == sa:
                continue
            bump((a, b, sb - sa, ga * gb) if (sa, a) <= (sb, b) else (b, a, sa - sb, ga * gb), sign)

    def pick(self, bucket):
        """Among equally frequent patterns (the first few), the one with the closest shifts and the
        narrowest values: its adder is the cheapest, and what is left to sum stays narrow."""
        g, off = self.g, self.offset
        best, best_w = None, None
        for n, k in enumerate(bucket):
            if n >= PICK:
                break
            a, b, d, s = k
            # The values the patterns stand for, before any offset: inverted top bits change
            # what an adder costs, not which patterns are shared (nor so the depth).
            oa, ob = off.get(a, 0), off.get(b, 0)
            hi = max(abs(g.lo[a] - oa), abs(g.hi[a] - oa)) + (max(abs(g.lo[b] - ob), abs(g.hi[b] - ob)) << d)
            w = (d, hi.bit_length())
            if best is None or w < best_w:
                best, best_w = k, w
        return best

    def choose_digits(self, alts, rounds: int):
        """Of the minimal signed-digit forms of each weight (``alts``: ``(column, signal, k,
        weight)``; the columns hold its canonical form), the one whose pairs with the other terms
        of its column occur most often elsewhere: more shared patterns, fewer adders. Ties go to
        the form with more added digits (sums of them stay non-negative). Leaves the pattern
        counts of the chosen columns for :meth:`cse`."""
        for col in self.cols:
            self.count_column(col)
        count = self.count

        def keys(items, ts):
            # The pattern keys of the terms ``ts`` with each other and with ``items``.
            for n, ((a, sa), ga) in enumerate(ts):
                for (b, sb), gb in items:
                    yield (a, b, sb - sa, ga * gb) if (sa, a) <= (sb, b) else (b, a, sa - sb, ga * gb)
                for (b, sb), gb in ts[n + 1 :]:
                    yield (a, b, sb - sa, ga * gb) if (sa, a) <= (sb, b) else (b, a, sa - sb, ga * gb)

        for _ in range(rounds):
            changed = 0
            for o, s, k, v in alts:
                col = self.cols[o]
                cur = [((s, sh), g) for (sig, sh), g in col.items() if sig == s]
                for t, _ in cur:
                    del col[t]
                items = list(col.items())
                for kk in keys(items, cur):
                    count[kk] -= 1
                best, best_sc = cur, None
                for rep in msd(v)[:MSD_FORMS]:
                    ts = [((s, sh + k), g) for sh, g in rep]
                    sc = (sum(count.get(kk, 0) for kk in keys(items, ts)), sum(g for _, g in rep))
                    if best_sc is None or sc > best_sc:
                        best, best_sc = ts, sc
                changed += sorted(best) != sorted(cur)
                col.update(best)
                for kk in keys(items, best):
                    count[kk] = count.get(kk, 0) + 1
            if not changed:
                break
        self.counted = True

    def cse(self):
        # Patterns bucketed by how often they occur (dicts as insertion-ordered sets, so the
        # choice among equally frequent patterns is deterministic).
        if not self.counted:
            for col in self.cols:
                self.count_column(col)
        self.buckets: dict = {}
        self.top = 0
        for k, c in self.count.items():
            if c >= 2:
                self.buckets.setdefault(c, {})[k] = None
                self.top = max(self.top, c)
        index = []  # per column: signal -> its shifts there
        cols_of: dict = {}  # signal -> the columns it appears in
        for c, col in enumerate(self.cols):
            idx: dict = {}
            for sig, sh in col:
                idx.setdefault(sig, set()).add(sh)
                cols_of.setdefault(sig, set()).add(c)
            index.append(idx)
        self.adj = [0] * len(self.cols)
        while self.top >= 2:
            bucket = self.buckets.get(self.top)
            if not bucket:
                self.top -= 1
                continue
            k = self.pick(bucket)
            a, b, d, s = k
            new = None
            both = cols_of.get(a, set()) & cols_of.get(b, set())
            for c in sorted(both):
                col, idx = self.cols[c], index[c]
                hits = []
                used = set()
                for sh in sorted(idx[a]):
                    t1, t2 = (a, sh), (b, sh + d)
                    if t1 in used or t2 in used or t2 == t1 or t2 not in col or col[t2] * col[t1] != s:
                        continue
                    used.add(t1)
                    used.add(t2)
                    hits.append((t1, t2))
                if not hits:
                    continue
                if new is None:
                    # Signed operands enter with their top bits inverted (no sign extension);
                    # the columns' constants take the offset back.
                    pa, pb = a, b
                    if self.cse_flip and self.g.lo[a] < 0:
                        pa = self.flip_of(a)
                    if self.cse_flip and self.g.lo[b] < 0:
                        pb = self.flip_of(b)
                    new = self.add_adder(pa, 1, pb, s, d)
                    new_off = self.g.lo[pa] - self.g.lo[a] + s * (self.g.lo[pb] - self.g.lo[b] << d)
                    self.offset[new] = new_off + self.offset.get(a, 0) + s * (self.offset.get(b, 0) << d)
                for t1, t2 in hits:
                    g, g2 = col.pop(t1), col.pop(t2)
                    self.adj[c] -= g * new_off << t1[1]
                    for sig, sh in (t1, t2):
                        idx[sig].discard(sh)
                        if not idx[sig]:
                            del idx[sig]
                            cols_of[sig].discard(c)
                    self.term_pairs(col, (t1, g), -1)
                    self.term_pairs(col, (t2, g2), -1)
                    self.bump(self.key((t1, g), (t2, g2)), -1)
                    # A fresh signal appears once per hit, each at its own shift.
                    nt = (new, t1[1])
                    col[nt] = g
                    idx.setdefault(new, set()).add(t1[1])
                    cols_of.setdefault(new, set()).add(c)
                    self.term_pairs(col, (nt, g), +1)
            self.bump(k, -self.count[k])

    # -- output trees -------------------------------------------------------------------------------

    def tree(self, col: dict, levels: int, build: bool, split: bool = False, flip: bool = False, pair: bool = False):
        """Sum one column's terms two at a time; return ``(output, LUT cost, depth)``.

        Terms are joined in the order of (depth // ``levels``, top bit): ``levels`` 1 joins the two
        earliest ready first, the least depth; larger ``levels`` let narrow terms wait for each
        other across that many adder levels; 0 joins the two narrowest (a Huffman tree on
        magnitudes: the fewest adder bits, and deep). ``split`` sums the added and the subtracted
        terms apart and subtracts once at the end: sums of non-negative terms stay non-negative,
        so they need no sign extension and their adders only cover where both operands have bits
        (:func:`_lut_cost`). ``flip`` makes the signed terms non-negative as well (their top bits
        inverted, :meth:`add_flip`) and moves the offsets into the column's constant: a signed
        operand extends its sign over the whole sum, a non-negative one only costs where both
        operands have bits. ``pair`` joins the first term in that order with the partner, of the
        terms ready as early, that makes the cheapest adder. Orders use interval ranges, so the cost found without ``build`` is the
        shape ``build`` then makes (its adders get exact ranges)."""
        g = self.g
        n = [0]
        cost = [0]
        flipped = set()  # the terms with inverted top bits

        def item(lo, hi, depth, sh, sign, sig):
            n[0] += 1
            top = _bits(lo, hi)[0] + sh  # the term's most significant bit
            key = (depth // levels, top) if levels else (top, depth)
            return (*key, sh, n[0], lo, hi, depth, sign, sig)

        def join(t1, t2, positive):
            # The lower-shifted term is the base and enters positively, so the bits below the
            # other term's shift pass through; the base's sign goes outside.
            (_, _, s1, _, lo1, hi1, d1, g1, a), (_, _, s2, _, lo2, hi2, d2, g2, b) = sorted([t1, t2], key=lambda t: (t[2], t[3]))
            d = s2 - s1
            if g1 < 0 < g2 and not positive:
                # The last positive term: keep the sum positive with a full-width subtraction,
                # which is cheaper than negating the output at the end.
                sp, sq, sign = -1, 1, 1
            else:
                sp, sq, sign = 1, g1 * g2, g1
            ra = (lo1, hi1) if sp > 0 else (-hi1, -lo1)
            rb = (lo2 << d, hi2 << d) if sq > 0 else (-(hi2 << d), -(lo2 << d))
            lo, hi = ra[0] + rb[0], ra[1] + rb[1]
            cost[0] += _lut_cost(lo1, hi1, lo2, hi2, d, sp, sq, lo, hi) + FLIP_LUTS * ((t1[3] in flipped) + (t2[3] in flipped))
            new = self.add_adder(a, sp, b, sq, d) if build else None
            return item(lo, hi, 1 + max(d1, d2), s1, sign, new)

        def partner(t1, heap):
            """The index of the term whose adder with ``t1`` is the cheapest, of those ready as
            early as ``t1`` if any."""
            best, best_c = -1, None
            c0, top1, sh1, lo1, g1 = t1[0], t1[1], t1[2], t1[4], t1[7]
            for j, u in enumerate(heap):
                if u[0] != c0 and best_c is not None and best_c[0] == 0:
                    continue
                if g1 == u[7] and lo1 >= 0 and u[4] >= 0:
                    # Non-negative terms added: from the higher shift up to the lower top bit.
                    c = min(top1, u[1]) - max(sh1, u[2])
                else:
                    (_, _, s1, _, lo_a, hi_a, *_), (_, _, s2, _, lo_b, hi_b, *_) = sorted([t1, u], key=lambda t: (t[2], t[3]))
                    d, sq = s2 - s1, g1 * u[7]
                    rb = (lo_b << d, hi_b << d) if sq > 0 else (-(hi_b << d), -(lo_b << d))
                    c = _lut_cost(lo_a, hi_a, lo_b, hi_b, d, 1, sq, lo_a + rb[0], hi_a + rb[1])
                c = (u[0] != c0, c)
                if best_c is None or c < best_c:
                    best, best_c = j, c
            return best

        def reduce(heap, others):
            heapq.heapify(heap)
            positive = sum(1 for t in heap if t[-2] > 0) + others
            while len(heap) > 1:
                t1 = heapq.heappop(heap)
                if not pair:
                    t2 = heapq.heappop(heap)
                else:
                    j = partner(t1, heap)
                    t2 = heap[j]
                    heap[j] = heap[-1]
                    heap.pop()
                    heapq.heapify(heap)
                positive -= (t1[-2] > 0) + (t2[-2] > 0)
                t = join(t1, t2, positive)
                positive += t[-2] > 0
                heapq.heappush(heap, t)
            return heap

        terms = []
        off = 0
        consts = []
        for (sig, sh), sign in col.items():
            lo, hi = g.lo[sig], g.hi[sig]
            if flip and self.is_const(sig):
                consts.append(sign * lo << sh)
                continue
            if flip and lo < 0:
                top = 1 << (_bits(lo, hi)[0] - 1)
                off += sign * top << sh
                lo, hi = lo + top, hi + top
                source = sig < g.n_sources
                if build:
                    sig = self.flip_of(sig)
                terms.append(item(lo, hi, g.depth[sig], sh, sign, sig))
                if source:
                    flipped.add(terms[-1][3])
                continue
            terms.append(item(lo, hi, g.depth[sig], sh, sign, sig))
        if flip:
            c = sum(consts) - off
            if c:
                tz = (abs(c) & -abs(c)).bit_length() - 1
                v = abs(c) >> tz
                terms.append(item(v, v, 0, tz, 1 if c > 0 else -1, self.add_late_const(v) if build else None))
        if split:
            pos = [t for t in terms if t[-2] > 0]
            neg = [t for t in terms if t[-2] < 0]
            heap = reduce(pos, 0) + reduce(neg, len(pos))
            if len(heap) > 1:
                heap = [join(heap[0], heap[1], 0)]
        else:
            heap = reduce(terms, 0)
        t = heap[0]
        return (t[-1], t[2], t[-2]), cost[0], t[-3]

    def trees(self, adder_levels=None):
        """Every output's sum: of the orders of :meth:`tree`, the one with the fewest adder bits
        that is no deeper than the deepest least-depth tree of the layer, rounded up to a multiple
        of ``adder_levels`` when given, so the layer keeps its number of pipeline stages."""
        deep = [self.tree(col, 1, False) if col else None for col in self.cols]
        limit = max((t[2] for t in deep if t is not None), default=0)
        if self.offset_only:
            # A constant that only takes back the offsets of shared patterns is one more term: if
            # that costs a pipeline stage, the caller plans again without those offsets.
            ref = max(
                (self.tree({t: v for t, v in col.items() if t != self.offset_only[o]}, 1, False)[2] if o in self.offset_only else t[2]
                 for o, (col, t) in enumerate(zip(self.cols, deep)) if t is not None),
                default=0,
            )  # fmt: skip
            levels = adder_levels or 1
            if -(-limit // levels) > max(1, -(-ref // levels)):
                raise _Deeper
        if adder_levels:
            # Levels up to the next register are free: the stage count is ceil(depth / levels).
            limit = max(1, -(-limit // adder_levels)) * adder_levels
        for col, t in zip(self.cols, deep):
            if t is None:
                self.g.outputs.append(None)
                continue
            best, bits = (1, False, False, False), t[1]
            # Inverted top bits only change columns with signed terms, and there (besides the
            # least-depth tree) they are about always the cheaper: tried alone, in half the time.
            signed = any(self.g.lo[sig] < 0 and not self.is_const(sig) for sig, _ in col)
            for levels, split, pair in TREE_ORDERS:
                if pair and len(col) > PAIR_TERMS:
                    continue
                _, b, depth = self.tree(col, levels, False, split, signed, pair)
                if depth <= limit and b < bits:
                    best, bits = (levels, split, signed, pair), b
            self.g.outputs.append(self.tree(col, best[0], True, *best[1:])[0])


def plan_adder_graph(
    weight, in_lo, in_hi, bias=None, *, values=None, steps=None, cse: bool = True, adder_levels: int | None = None
) -> AdderGraph:
    """Plan ``x @ weight + bias`` for inputs with per-lane intervals ``[in_lo[i], in_hi[i]]``.

    ``values``: optional per-lane sorted tuples of the only values a lane takes; lanes with two
    values become single bits. ``steps``: optional per-lane ``k`` such that the lane only takes
    multiples of ``2**k`` (a lane quantized with fewer fractional bits than its type has); its low
    bits are left out of the adders. ``adder_levels``: the adder levels between two registers of
    the pipeline; output trees may then be as deep as the stages the layer needs anyway (fewer
    adder bits at the same latency). Signed lanes may enter in offset binary (the top bit of the
    lane's own width inverted: ``x + 2**(w-1)``, the offset moved into the constant), which keeps
    their sums non-negative; weights may take other minimal signed-digit forms (:func:`msd`)
    that share more. Of these plans, the one with the fewest LUTs and no more pipeline stages
    than the canonical one is kept. Cached by content, so planning a layer twice (an estimate
    and the hardware) costs once.
    """
    return plan_adder_graphs([((weight, in_lo, in_hi, bias), dict(values=values, steps=steps, cse=cse, adder_levels=adder_levels))])[0]


def plan_adder_graphs(requests) -> list[AdderGraph]:
    """:func:`plan_adder_graph` for several layers, ``requests`` = ``[(args, kwargs), ...]``: their
    alternative plans are made on every core when there is enough to plan (one forked process
    per core; sequentially where processes cannot be made)."""
    out: list = [None] * len(requests)
    todo: dict = {}  # key -> (request index list, normalized arguments)
    for r, (args, kw) in enumerate(requests):
        a = _normalize(*args, **kw)
        key = a[-1]
        if key in _CACHE:
            out[r] = _CACHE[key]
        else:
            todo.setdefault(key, ([], a))[0].append(r)
    # Other digit forms first: when one of them is as shallow as any plan can be (a sum of n
    # terms needs ceil(log2 n) adder levels), the canonical plan is not needed to bound its stages.
    chosen: dict = {}
    first = {key: _variants(a) for key, (_, a) in todo.items()}
    # Few digits in all: the canonical plans join the first round (on the other core), so a
    # layer that needs them does not wait for a second round.
    spare: dict = {}
    digits = {key: csd_digits(a[0]) for key, (_, a) in todo.items()}
    if _cores() > 1 and sum(digits.values()) <= SPECULATE_DIGITS and sum(digits[k] * len(vs) for k, vs in first.items()) >= PARALLEL_DIGITS:
        spare = {key: [v for v in _variants(todo[key][1], canonical=True) if v not in first[key]] for key in todo}
    plans = _plan_all([(todo[key][1], v) for key, vs in (*first.items(), *spare.items()) for v in vs])
    for key, vs in first.items():
        a = todo[key][1]
        levels = a[7] or 1
        gs = [plans.pop(0) for _ in vs]
        # Canonical digits alone (other forms off or the layer too large): no more stages than
        # the first, (False, 0).
        floor = max(1, -(-(gs[0].max_depth if vs[0] == (False, 0) else _least_depth(a)) // levels))
        ok = [g for g in gs if max(1, -(-g.max_depth // levels)) <= floor]
        chosen[key] = (min(ok, key=lambda g: g.lut_cost()) if ok else None, gs)
    spare = {key: [plans.pop(0) for _ in vs] for key, vs in spare.items()}
    rest = {key: _variants(todo[key][1], canonical=True) for key, (g, _) in chosen.items() if g is None}
    plans = _plan_all([(todo[key][1], v) for key, vs in rest.items() if not spare.get(key) for v in vs])
    for key, vs in rest.items():
        a = todo[key][1]
        levels = a[7] or 1
        base = spare.get(key) or [plans.pop(0) for _ in vs]
        stages = max(1, -(-base[0].max_depth // levels))
        ok = [g for g in base + chosen[key][1] if max(1, -(-g.max_depth // levels)) <= stages]
        chosen[key] = (min(ok, key=lambda g: g.lut_cost()), None)
    for key, (rs, _) in todo.items():
        g = chosen[key][0]
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[key] = g
        for r in rs:
            out[r] = g
    return out


def _least_depth(a) -> int:
    """Adder levels no plan can do without: every non-zero weight on a varying lane is at least
    one term of its output's sum."""
    w, in_lo, in_hi, values = a[0], a[1], a[2], a[4]
    varying = np.array([lo != hi and (vs is None or len(vs) > 1) for lo, hi, vs in zip(in_lo, in_hi, values)])
    n = np.count_nonzero(np.asarray(w)[varying], axis=0) if varying.any() else np.zeros(1)
    return int(max(int(n.max(initial=0)) - 1, 0)).bit_length()


def _normalize(weight, in_lo, in_hi, bias=None, *, values=None, steps=None, cse=True, adder_levels=None):
    w = np.asarray(weight)
    n_in = w.shape[0]
    steps = [0] * n_in if steps is None else [int(k) for k in steps]
    values = [None] * n_in if values is None else [tuple(int(v) for v in vs) if vs is not None else None for vs in values]
    key = hashlib.sha1(
        repr((w.shape, [int(v) for v in w.ravel()], None if bias is None else [int(b) for b in np.asarray(bias)],
              [int(v) for v in in_lo], [int(v) for v in in_hi], values, steps, cse, adder_levels)).encode()
    ).hexdigest()
    return (w, list(in_lo), list(in_hi), bias, values, steps, cse, adder_levels, key)


def _variants(a, canonical: bool = False) -> list:
    """``(offset, digit-form passes)`` of the plans to compare: other digit forms, or (with
    ``canonical``, or when they do not apply) canonical digits; offset binary as well for signed lanes."""
    w, in_lo, cse = a[0], a[1], a[6]
    offsets = [False, True] if any(lo < 0 for lo in in_lo) else [False]
    if csd_digits(w) > OFFSET_DIGITS:
        return [(False, 0)]
    forms = [0] if canonical or not (MSD and cse) or _choice_keys(w) > MSD_KEYS else list(MSD_ROUNDS)
    return [(o, f) for o in offsets for f in forms]


def _choice_keys(w) -> int:
    """About how many pattern counts :meth:`_Planner.choose_digits` reads for ``w`` per pass: per
    weight with several forms, its column's digits times its own times the forms compared."""
    a = np.abs(np.asarray(w))
    if a.dtype == object and a.size and int(a.max()) >= 1 << 61:
        return MSD_KEYS + 1  # weights on a shifted grid: wide, like the ones this guards against
    a = a.astype(np.int64)
    digits = np.bitwise_count(((3 * a) ^ a) >> 1).astype(np.int64)
    vals, inv = np.unique(a, return_inverse=True)
    n = np.array([len(msd(int(v))[:MSD_FORMS]) if v else 0 for v in vals])[inv.reshape(a.shape)]
    per = np.where(n > 1, digits * (n + 2), 0)
    return int((per * digits.sum(axis=0)).sum()) * max(MSD_ROUNDS, default=0)


def _plan_variant(a, variant) -> AdderGraph:
    w, in_lo, in_hi, bias, values, steps, cse, adder_levels, _ = a
    offset, forms = variant
    try:
        return _plan(w, in_lo, in_hi, bias, values, steps, cse, adder_levels, offset, forms=forms)
    except _Deeper:
        return _plan(w, in_lo, in_hi, bias, values, steps, cse, adder_levels, offset, cse_flip=False, forms=forms)


def _plan_task(task):
    return _plan_variant(*task)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _plan_all(tasks) -> list:
    """The plans of ``tasks`` (``(arguments, variant)``), on every core when they are worth a process."""
    digits = sum(csd_digits(t[0][0]) for t in tasks)
    jobs = min(len(tasks), _cores())
    if jobs > 1 and digits >= PARALLEL_DIGITS and "fork" in multiprocessing.get_all_start_methods():
        order = sorted(range(len(tasks)), key=lambda k: -csd_digits(tasks[k][0][0]))
        try:
            with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as ex:
                done = list(ex.map(_plan_task, [tasks[k] for k in order]))
        except (OSError, AssertionError, concurrent.futures.process.BrokenProcessPool):
            pass  # no child processes here (a daemon, a sandbox): plan in this one
        else:
            out = [None] * len(tasks)
            for k, g in zip(order, done):
                out[k] = g
            return out
    return [_plan_task(t) for t in tasks]


class _Deeper(Exception):
    """The plan needs one pipeline stage more than it would without offsets in shared patterns."""


def _plan(w, in_lo, in_hi, bias, values, steps, cse, adder_levels, offset, cse_flip=True, forms=0) -> AdderGraph:
    n_in, n_out = w.shape
    g = AdderGraph()
    total_digits = sum(len(csd(v)) for v in w.ravel() if v)
    per_col = total_digits / max(n_out, 1)
    block = None
    if cse and per_col > BLOCK_TERMS * 1.5:
        # Long columns share only within blocks of inputs: planning time grows with the number of
        # weights instead of with its square, for a small loss of sharing.
        block = max(2, int(BLOCK_TERMS * n_in / per_col))
    pl = _Planner(g, [dict() for _ in range(n_out)])
    const_off = [0] * n_out
    alts = []
    for i in range(n_in):
        lo, hi = int(in_lo[i]), int(in_hi[i])
        col_w = [int(v) for v in w[i]]
        if not any(col_w):
            continue
        vs = values[i]
        if lo == hi or (vs is not None and len(vs) == 1):
            c = lo if lo == hi else vs[0]
            for o in range(n_out):
                const_off[o] += col_w[o] * c
            continue
        if vs is not None and len(vs) == 2:
            vlo, vhi = vs
            # One bit that tells the two values apart, read straight from the lane.
            diff = (vlo ^ vhi) & -(vlo ^ vhi)
            bit = diff.bit_length() - 1
            inv = (vhi >> bit) & 1 == 0
            b = pl.add_source(("bit", i, bit, inv), 0, 1)
            nb = None
            for o in range(n_out):
                if not col_w[o]:
                    continue
                const_off[o] += col_w[o] * vlo
                for sh, sg in csd(col_w[o] * (vhi - vlo)):
                    if sg > 0:
                        pl.cols[o][(b, sh)] = pl.cols[o].get((b, sh), 0) + 1
                    else:
                        # -b = (1 - b) - 1: add the complement and move the -1 into the constant.
                        if nb is None:
                            nb = pl.add_source(("bit", i, bit, not inv), 0, 1)
                        pl.cols[o][(nb, sh)] = 1
                        const_off[o] -= 1 << sh
            pl.group[b] = i // (block or n_in)
            if nb is not None:
                pl.group[nb] = i // (block or n_in)
            continue
        k = steps[i]
        lo, hi = lo >> k, hi >> k
        off = 0
        if lo < 0 and offset:
            # Offset binary: the lane's top bit inverted is x + 2**(w-1), never negative, so its
            # sums need no sign extension; the offset moves into the constant.
            wl = _bits(lo, hi)[0]
            off = 1 << (wl - 1)
            s = pl.add_source(("off", i, k, wl), lo + off, hi + off)
        else:
            s = pl.add_source(("in", i, k), lo, hi)
        pl.group[s] = i // (block or n_in)
        for o in range(n_out):
            if col_w[o]:
                for sh, sg in csd(col_w[o]):
                    pl.cols[o][(s, sh + k)] = sg
                if forms and len(msd(col_w[o])) > 1:
                    alts.append((o, s, k, col_w[o]))
                const_off[o] -= col_w[o] * off << k
    # Constants join the sums only after sharing, which moves the offsets of inverted top bits
    # into them (:func:`_hoist_constants` numbers them with the sources).
    pl.cse_flip = CSE_FLIP and cse_flip
    if alts:
        pl.choose_digits(alts, forms)
    adj_of: dict = {}
    if cse and block is not None:
        pl.count, pl.counted = {}, False  # patterns are counted per block
        full = pl.cols
        parts: dict = {}
        for o, col in enumerate(full):
            for (sig, sh), sg in col.items():
                parts.setdefault((o, pl.group[sig]), {})[(sig, sh)] = sg
        keys = sorted(parts)
        pl.cols = [parts[k] for k in keys]
        pl.cse()
        merged = [dict() for _ in range(n_out)]
        for (o, _), col, adj in zip(keys, pl.cols, pl.adj):
            merged[o].update(col)
            const_off[o] += adj
            adj_of[o] = adj_of.get(o, 0) + adj
        pl.cols = merged
    elif cse:
        pl.cse()
        const_off = [c + adj for c, adj in zip(const_off, pl.adj)]
    for o in range(n_out):
        c = const_off[o] + (int(np.asarray(bias)[o]) if bias is not None else 0)
        if c:
            tz = (c & -c).bit_length() - 1
            pl.cols[o][(pl.const(c >> tz), tz)] = 1
            if c == (pl.adj[o] if cse and block is None else adj_of.get(o, 0)):
                pl.offset_only[o] = (pl.const_sig, tz)
    pl.trees(adder_levels)
    _hoist_constants(g)
    return g


def _hoist_constants(g: AdderGraph):
    """Number the constants the output trees made (:meth:`_Planner.add_late_const`) with the
    sources, before every adder, and drop the constants nothing reads any more."""
    n = g.n_sources
    used = {s for ref in g.outputs if ref is not None for s in (ref[0],)}
    for a in g.adders:
        if not isinstance(a[0], str):
            used.update((a[0], a[2]))
    late = {n + k for k, a in enumerate(g.adders) if isinstance(a[0], str)}
    keep = [s for s in range(n) if g.sources[s][0] != "const" or s in used]
    keep += [s for s in sorted(late) if s in used]
    keep += [n + k for k, a in enumerate(g.adders) if not isinstance(a[0], str)]
    new = {old: i for i, old in enumerate(keep)}
    sources = [g.sources[s] if s < n else ("const", g.lo[s]) for s in keep if s < n or s in late]
    adders = [g.adders[s - n] for s in keep if s >= n and s not in late]
    g.adders = [(new[p], sp, new[q], sq, d) for p, sp, q, sq, d in adders]
    g.sources = sources
    g.outputs = [None if ref is None else (new[ref[0]], *ref[1:]) for ref in g.outputs]
    g.lo, g.hi, g.depth = ([v[s] for s in keep] for v in (g.lo, g.hi, g.depth))


_CACHE: dict = {}


def lut_estimate(graph: AdderGraph, stages: int = 1) -> int:
    """Rough 7-series LUT count of the adders on carry chains (:meth:`AdderGraph.lut_cost`)."""
    return graph.lut_cost()


def lane_bounds(in_type, n_in: int, in_values, in_ranges=None):
    """Per-lane (lo, hi, value sets, steps) from the type, value sets and ``[lo, hi, k]`` ranges."""
    lo = [in_type.min_mantissa] * n_in
    hi = [in_type.max_mantissa] * n_in
    steps = [0] * n_in
    values = None
    for i, r in enumerate(in_ranges or []):
        if r is not None:
            lo[i], hi[i], steps[i] = int(r[0]), int(r[1]), int(r[2])
    if in_values is not None:
        values = [None] * n_in
        for i, vs in enumerate(in_values):
            if vs is not None and len(vs):
                vs = sorted(int(v) for v in vs)
                lo[i], hi[i] = vs[0], vs[-1]
                values[i] = tuple(vs)
    return lo, hi, values, steps
