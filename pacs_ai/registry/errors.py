"""The registry's refusals, in a module without heavy imports so the CLI can catch them cheaply."""

from __future__ import annotations


class BundleError(ValueError):
    """A bundle that cannot be used; the message names the bundle and the problem."""


class RegistryError(ValueError):
    """A registry operation that is refused; the message says why."""


class StateConflict(RegistryError):
    """A change of state that the registry's rules refuse as things stand (HTTP 409)."""
