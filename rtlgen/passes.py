"""Graph passes: objects with one method ``run(graph) -> graph``, applied as an explicit list.

:func:`run_passes` verifies the graph after every pass and can dump each intermediate graph as JSON.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from .config import Config
from .errors import ConfigError
from .ir import Dense, Graph

__all__ = ["Pass", "CheckConfigNames", "ApplyReuse", "run_passes", "default_passes", "valid_reuse_factors"]

log = logging.getLogger(__name__)


class Pass:
    """A graph transformation; subclasses implement :meth:`run`."""

    def run(self, graph: Graph) -> Graph:
        raise NotImplementedError  # pragma: no cover

    def __repr__(self):
        return type(self).__name__


def valid_reuse_factors(n_in: int, n_out: int) -> list[int]:
    """Reuse factors that give exactly R cycles per vector for an ``n_in`` x ``n_out`` dense layer."""
    from rtlgen.layers import reuse_plan

    small = {reuse_plan(n_in, n_out, r)[2] for r in range(1, n_in + 1)}
    large = {n_in * math.ceil(n_out / s) for s in range(1, n_out + 1)}
    return sorted(small | large)


class CheckConfigNames(Pass):
    """Every ``LayerName`` key in the configuration must name a node of the graph."""

    def __init__(self, config: Config):
        self.config = config

    def run(self, graph):
        names = dict.fromkeys([n.name for n in graph.nodes] + list(graph.inputs) + list(graph.source_names))
        self.config.check_layer_names(list(names))
        return graph


class ApplyReuse(Pass):
    """Set and check each dense layer's reuse factor and strategy from the configuration."""

    def __init__(self, config: Config):
        self.config = config

    def run(self, graph):
        for node in graph.nodes:
            if not isinstance(node.op, Dense):
                continue
            r = self.config.reuse_factor(node.name, "Dense")
            n_in, n_out = node.op.n_in, node.op.n_out
            if not 1 <= r <= n_in * n_out:
                raise ConfigError(
                    f"node {node.name!r}: reuse factor {r} cannot be used with {n_in} inputs and {n_out} "
                    f"outputs; it must be between 1 (fully parallel) and {n_in * n_out} (one multiplier)"
                )
            valid = valid_reuse_factors(n_in, n_out)
            if r not in valid:
                # Round down to the nearest exact schedule: never slower than asked.
                near = max(v for v in valid if v <= r)
                graph.notes.append(
                    f"{node.name}: reuse factor {r} does not split {n_in}x{n_out} evenly; using {near} "
                    f"(exact choices near it: {', '.join(map(str, [v for v in valid if near // 2 <= v <= 2 * r][:12]))})"
                )
                r = near
            node.op.reuse_factor = r
            node.op.strategy = self.config.strategy(node.name, "Dense")
        return graph


def default_passes(config: Config) -> list[Pass]:
    return [CheckConfigNames(config), ApplyReuse(config)]


def run_passes(graph: Graph, passes: list[Pass], *, dump_dir: str | os.PathLike | None = None) -> Graph:
    graph.verify()
    for i, p in enumerate(passes):
        graph = p.run(graph)
        graph.verify()
        log.debug("pass %s done", p)
        if dump_dir is not None:
            Path(dump_dir).mkdir(parents=True, exist_ok=True)
            (Path(dump_dir) / f"{i:02d}_{type(p).__name__}.json").write_text(graph.to_json())
    return graph
