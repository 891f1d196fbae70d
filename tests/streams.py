"""Stream helpers for Amaranth-simulator tests of layer components, written once."""

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator


async def drive_all(ctx, duts, xs, *, ready=None, valid=None):
    """Drive the vectors ``xs`` into every ``dut.i`` side by side and collect each ``dut.o``.

    ``ready[k]``/``valid[k]`` (or None: always) map a cycle to whether DUT ``k``'s sink is ready
    and its source offers data. Returns per DUT (outputs, input cycles, output cycles)."""
    n = len(xs)
    ready = ready or [None] * len(duts)
    valid = valid or [None] * len(duts)
    state = [{"i": 0, "outs": [], "t_in": [], "t_out": []} for _ in duts]
    cycle = 0
    while any(len(s["outs"]) < n for s in state) and cycle < 50 * n + 100:
        fires = []
        for d, s, rd, vd in zip(duts, state, ready, valid):
            v = bool(s["i"] < n and (vd is None or vd(cycle)))
            r = bool(rd is None or rd(cycle))
            ctx.set(d.i.valid, v)
            if v:
                ctx.set(d.i.payload, [int(a) for a in xs[s["i"]]])
            ctx.set(d.o.ready, r)
            fires.append((v, r))
        # The handshakes of this cycle, sampled before the edge.
        for d, s, (v, r) in zip(duts, state, fires):
            if r and ctx.get(d.o.valid):
                s["outs"].append([int(a) for a in ctx.get(d.o.payload)])
                s["t_out"].append(cycle)
            if v and ctx.get(d.i.ready):
                s["t_in"].append(cycle)
                s["i"] += 1
        await ctx.tick()
        cycle += 1
    return [(np.array(s["outs"]), s["t_in"], s["t_out"]) for s in state]


async def drive(ctx, dut, xs, *, ready=None, valid=None):
    """:func:`drive_all` for one DUT: (outputs, input cycles, output cycles)."""
    (result,) = await drive_all(ctx, [dut], xs, ready=[ready], valid=[valid])
    return result


def random_stalls(seed, *, p_valid=0.7, p_ready=0.6):
    """``(valid, ready)`` cycle predicates that offer data and accept it at random."""
    rng = np.random.default_rng(seed)
    return (lambda cycle: rng.random() < p_valid), (lambda cycle: rng.random() < p_ready)


def run_layers(duts, xs, *, stall_seed=None):
    """Simulate several layers side by side on ``xs`` with :func:`drive_all`, each under its own
    random valid/ready stalls when ``stall_seed`` is given; combinational layers get a clock too."""
    result = {}
    kw = {}
    if stall_seed is not None:
        pairs = [random_stalls(stall_seed + k) for k in range(len(duts))]
        kw = {"valid": [p[0] for p in pairs], "ready": [p[1] for p in pairs]}

    async def bench(ctx):
        result["r"] = await drive_all(ctx, duts, xs, **kw)

    _simulate(duts, bench)
    return result["r"]


def run_layer(dut, xs, **kw):
    """Simulate one layer on ``xs`` with :func:`drive`; combinational layers get a clock too."""
    result = {}

    async def bench(ctx):
        result["r"] = await drive(ctx, dut, xs, **kw)

    _simulate([dut], bench)
    return result["r"]


def _simulate(duts, bench):
    top = Module()
    for k, dut in enumerate(duts):
        top.submodules[f"dut{k}"] = dut
    toggle = Signal()  # gives combinational layers a clock domain to step through
    top.d.sync += toggle.eq(~toggle)
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def run_text_form(dut, xs, ref, tmp_path, seed):
    """The Verilog text ``to_verilog`` writes for the layer ``dut``, in a simulator under random
    stalls, against ``ref``; returns the text."""
    import pytest

    from rtlgen.layers._verilog import to_verilog
    from rtlgen.sim.runner import available_simulators, run, write_testbench

    sims = available_simulators()
    if not sims:
        pytest.skip("no HDL simulator")
    text = to_verilog(dut, "top")
    (tmp_path / "rtl").mkdir()
    (tmp_path / "rtl" / "top.v").write_text(text)
    tin, tout = dut.in_type, dut.out_type
    meta = dict(
        toplevel="top", in_lanes=dut.n_in, in_width=tin.width, in_signed=tin.signed, out_lanes=dut.n_out,
        out_width=tout.width, out_signed=tout.signed, latency=dut.latency, interval=dut.initiation_interval,
        verilog_sources=["../rtl/top.v"],
    )  # fmt: skip
    write_testbench(tmp_path / "tb", xs, ref, meta)
    sim = "icarus" if "icarus" in sims else sims[0]
    res = run(tmp_path / "tb", simulator=sim, stall="random", seed=seed)
    assert res["passed"] and res["mismatches"] == 0, res.get("first_mismatches")
    return text
