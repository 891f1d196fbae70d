"""User-facing errors. Each message names the node or key, what was expected and how to fix it."""

__all__ = ["RtlgenError", "ModelFormatError", "UnsupportedOpError", "ConfigError", "DesignError"]


class RtlgenError(Exception):
    """Base of every error caused by the user's input; the CLI prints it as one line."""


class ModelFormatError(RtlgenError):
    """The model file is missing, unreadable or not the format it claims to be."""


class UnsupportedOpError(RtlgenError):
    """The model uses an operation (or a form of one) that rtlgen cannot build."""

    def __init__(self, node: str, op: str, detail: str):
        self.node, self.op = node, op
        super().__init__(f"node {node!r} ({op}): {detail}")


class ConfigError(RtlgenError):
    """A configuration key or value is unknown or impossible."""


class DesignError(RtlgenError):
    """A built design cannot do what was asked (e.g. simulate without a simulator)."""
