"""Simulation harness: test vectors, generated cocotb testbench, and its runner."""

from .runner import SimulationError, available_simulators, check_simulator, run, write_testbench
from .vectors import pack, read_vectors, unpack, write_vectors

__all__ = [
    "SimulationError",
    "available_simulators",
    "check_simulator",
    "pack",
    "read_vectors",
    "run",
    "unpack",
    "write_testbench",
    "write_vectors",
]
