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
the output's constant).

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

import hashlib
import heapq
from dataclasses import dataclass, field

import numpy as np

__all__ = ["AdderGraph", "csd", "csd_digits", "plan_adder_graph", "lut_estimate", "lane_bounds"]

# Columns with more terms than this are shared within blocks of inputs of about this many terms.
BLOCK_TERMS = 96
# Among equally frequent patterns, this many are compared to pick the closest and narrowest.
PICK = 64
# Orders (levels, split) of the output trees tried besides the least-depth one (see _Planner.tree).
TREE_ORDERS = ((1, True), (2, False), (2, True), (3, False), (3, True), (0, False), (0, True))
# Layers with at most this many CSD digits are also planned with signed lanes in offset binary.
OFFSET_DIGITS = 50_000
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


def csd_digits(w) -> int:
    """Non-zero canonical-signed-digit digits of all of ``w`` (integers), without listing them:
    the size of the adder graph before sharing, and what planning it costs."""
    a = np.abs(np.asarray(w, dtype=np.int64)).ravel()
    return int(np.bitwise_count(((3 * a) ^ a) >> 1).sum())


def _lut_cost(plo, phi, qlo, qhi, d, sp, sq, lo, hi) -> int:
    """LUTs of ``sp * P + sq * (Q << d)`` on a carry chain, one per result bit that needs one.

    An addition needs a LUT only where both operands have bits: above a non-negative operand's
    width its bits are constant zeros, and the chain passes the other operand's bit and the carry
    for free (a signed operand extends its sign over the whole result). A subtraction inverts one
    operand, so it needs a LUT wherever either has bits. The bits below ``d`` of a positive base
    are wires."""
    w = _bits(lo, hi)[0]
    wp, p_signed = _bits(plo, phi)
    wq, q_signed = _bits(qlo, qhi)
    p_end = w if p_signed else min(wp, w)
    q_end = w if q_signed else min(d + wq, w)
    if sp > 0 and sq > 0:
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
    ``d >= 0``. Each output is ``None`` (zero) or ``(signal, shift, sign)``.
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
        return len(self.adders)

    @property
    def max_depth(self) -> int:
        return max((self.depth[o[0]] for o in self.outputs if o is not None), default=0)

    def width(self, s: int) -> int:
        return _bits(self.lo[s], self.hi[s])[0]

    def adder_bits(self) -> int:
        """Full-adder bits over all adders (the bits below a shifted operand are wires)."""
        total = 0
        for k, (_, sp, _, _, d) in enumerate(self.adders):
            s = self.n_sources + k
            total += max(self.width(s) - (d if sp > 0 else 0), 1)
        return total

    def lut_cost(self) -> int:
        """LUTs of the adders on carry chains (:func:`_lut_cost`)."""
        g, n = self, self.n_sources
        return sum(
            _lut_cost(g.lo[p], g.hi[p], g.lo[q], g.hi[q], d, sp, sq, g.lo[n + k], g.hi[n + k]) if sq else 0
            for k, (p, sp, q, sq, d) in enumerate(self.adders)
        )

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
            vals.append(sp * vals[p] + sq * (vals[q] << d))
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
        g = self.g
        best, best_w = None, None
        for n, k in enumerate(bucket):
            if n >= PICK:
                break
            a, b, d, s = k
            hi = max(abs(g.lo[a]), abs(g.hi[a])) + (max(abs(g.lo[b]), abs(g.hi[b])) << d)
            w = (d, hi.bit_length())
            if best is None or w < best_w:
                best, best_w = k, w
        return best

    def cse(self):
        # Patterns bucketed by how often they occur (dicts as insertion-ordered sets, so the
        # choice among equally frequent patterns is deterministic).
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
                    new = self.add_adder(a, 1, b, s, d)
                for t1, t2 in hits:
                    g, g2 = col.pop(t1), col.pop(t2)
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

    def tree(self, col: dict, levels: int, build: bool, split: bool = False):
        """Sum one column's terms two at a time; return ``(output, LUT cost, depth)``.

        Terms are joined in the order of (depth // ``levels``, top bit): ``levels`` 1 joins the two
        earliest ready first, the least depth; larger ``levels`` let narrow terms wait for each
        other across that many adder levels; 0 joins the two narrowest (a Huffman tree on
        magnitudes: the fewest adder bits, and deep). ``split`` sums the added and the subtracted
        terms apart and subtracts once at the end: sums of non-negative terms stay non-negative,
        so they need no sign extension and their adders only cover where both operands have bits
        (:func:`_lut_cost`). Orders use interval ranges, so the cost found without ``build`` is the
        shape ``build`` then makes (its adders get exact ranges)."""
        g = self.g
        n = [0]
        cost = [0]

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
            cost[0] += _lut_cost(lo1, hi1, lo2, hi2, d, sp, sq, lo, hi)
            new = self.add_adder(a, sp, b, sq, d) if build else None
            return item(lo, hi, 1 + max(d1, d2), s1, sign, new)

        def reduce(heap, others):
            heapq.heapify(heap)
            positive = sum(1 for t in heap if t[-2] > 0) + others
            while len(heap) > 1:
                t1 = heapq.heappop(heap)
                t2 = heapq.heappop(heap)
                positive -= (t1[-2] > 0) + (t2[-2] > 0)
                t = join(t1, t2, positive)
                positive += t[-2] > 0
                heapq.heappush(heap, t)
            return heap

        terms = [item(g.lo[sig], g.hi[sig], g.depth[sig], sh, sign, sig) for (sig, sh), sign in col.items()]
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
        if adder_levels:
            # Levels up to the next register are free: the stage count is ceil(depth / levels).
            limit = max(1, -(-limit // adder_levels)) * adder_levels
        for col, t in zip(self.cols, deep):
            if t is None:
                self.g.outputs.append(None)
                continue
            best, bits = (1, False), t[1]
            for order in TREE_ORDERS:
                _, b, depth = self.tree(col, order[0], False, order[1])
                if depth <= limit and b < bits:
                    best, bits = order, b
            levels, split = best
            self.g.outputs.append(self.tree(col, levels, True, split)[0])


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
    their sums non-negative; the plan with fewer LUTs is kept. Cached by content, so planning a
    layer twice (an estimate and the hardware) costs once.
    """
    w = np.asarray(weight)
    n_in, n_out = w.shape
    steps = [0] * n_in if steps is None else [int(k) for k in steps]
    values = [None] * n_in if values is None else [tuple(int(v) for v in vs) if vs is not None else None for vs in values]
    key = hashlib.sha1(
        repr((w.shape, [int(v) for v in w.ravel()], None if bias is None else [int(b) for b in np.asarray(bias)],
              [int(v) for v in in_lo], [int(v) for v in in_hi], values, steps, cse, adder_levels)).encode()
    ).hexdigest()
    if key in _CACHE:
        return _CACHE[key]
    g = _plan(w, in_lo, in_hi, bias, values, steps, cse, adder_levels, False)
    total_digits = sum(len(csd(v)) for v in w.ravel() if v)
    if any(lo < 0 for lo in in_lo) and total_digits <= OFFSET_DIGITS:
        # Signed lanes in offset binary as well: kept when that needs fewer LUTs, no more stages.
        alt = _plan(w, in_lo, in_hi, bias, values, steps, cse, adder_levels, True)
        levels = adder_levels or 1
        if alt.lut_cost() < g.lut_cost() and -(-alt.max_depth // levels) <= -(-g.max_depth // levels):
            g = alt
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = g
    return g


def _plan(w, in_lo, in_hi, bias, values, steps, cse, adder_levels, offset) -> AdderGraph:
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
                const_off[o] -= col_w[o] * off << k
    # Constants are sources too (numbered before any adder) but join the sums only after sharing.
    consts = []
    for o in range(n_out):
        c = const_off[o] + (int(np.asarray(bias)[o]) if bias is not None else 0)
        if c:
            tz = (c & -c).bit_length() - 1
            consts.append((o, pl.add_source(("const", c >> tz), c >> tz, c >> tz), tz))
    if cse and block is not None:
        full = pl.cols
        parts: dict = {}
        for o, col in enumerate(full):
            for (sig, sh), sg in col.items():
                parts.setdefault((o, pl.group[sig]), {})[(sig, sh)] = sg
        keys = sorted(parts)
        pl.cols = [parts[k] for k in keys]
        pl.cse()
        merged = [dict() for _ in range(n_out)]
        for (o, _), col in zip(keys, pl.cols):
            merged[o].update(col)
        pl.cols = merged
    elif cse:
        pl.cse()
    for o, cs, tz in consts:
        pl.cols[o][(cs, tz)] = 1
    pl.trees(adder_levels)
    return g


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
