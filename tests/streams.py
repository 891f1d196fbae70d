"""Stream helpers for Amaranth-simulator tests of layer components, written once."""

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator


async def drive(ctx, dut, xs, *, ready=None, valid=None):
    """Drive vectors into ``dut.i`` and collect ``dut.o``; ``ready``/``valid`` map a cycle to
    whether the sink is ready / the source offers data. Returns (outputs, input cycles, output cycles)."""
    outs, t_in, t_out = [], [], []
    i = cycle = 0
    n = len(xs)
    while len(outs) < n and cycle < 50 * n + 100:
        v = bool(i < n and (valid is None or valid(cycle)))
        r = bool(ready is None or ready(cycle))
        ctx.set(dut.i.valid, v)
        if v:
            ctx.set(dut.i.payload, [int(a) for a in xs[i]])
        ctx.set(dut.o.ready, r)
        # The handshakes of this cycle, sampled before the edge.
        in_fire = v and ctx.get(dut.i.ready)
        if r and ctx.get(dut.o.valid):
            outs.append([int(a) for a in ctx.get(dut.o.payload)])
            t_out.append(cycle)
        if in_fire:
            t_in.append(cycle)
            i += 1
        await ctx.tick()
        cycle += 1
    return np.array(outs), t_in, t_out


def run_layer(dut, xs, **kw):
    """Simulate one layer on ``xs`` with :func:`drive`; combinational layers get a clock too."""
    result = {}

    async def bench(ctx):
        result["r"] = await drive(ctx, dut, xs, **kw)

    top = Module()
    top.submodules.dut = dut
    toggle = Signal()  # gives combinational layers a clock domain to step through
    top.d.sync += toggle.eq(~toggle)
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return result["r"]
