"""Errors a user can cause. Every message names the problem and the fix."""

from __future__ import annotations

__all__ = ["BpnasError", "InputError", "BundleError", "TargetUnavailable", "BudgetInfeasible", "ConfigError"]


class BpnasError(Exception):
    """Base class of every error bpnas raises for bad input or environment."""


class InputError(BpnasError, ValueError):
    """Bad user input: shape, dtype, NaN/inf, unreadable image, bad argument value."""


class ConfigError(InputError):
    """A mixed-precision configuration that does not fit the model or the rules."""


class BundleError(BpnasError):
    """A missing, corrupt, tampered, unsafe or incompatible bundle."""


class TargetUnavailable(BpnasError):
    """An unknown target, or a known target whose engine is not installed here."""


class BudgetInfeasible(BpnasError):
    """No configuration of the candidate bit pairs fits the BOPs budget."""
