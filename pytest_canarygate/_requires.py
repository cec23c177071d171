"""Fail at import when a dependency that a module imports only where it uses it is not installed.

The heavy dependencies (securesystemslib with cryptography, requests with urllib3) are imported
inside the functions that sign, verify or read over HTTP, so that loading the plugin does not pay
for them. A module that needs one still checks at import that it is installed: a broken install
fails as it did when the dependency was imported at the top, at once and naming the module.
"""

from __future__ import annotations

from importlib.util import find_spec

__all__ = ["require"]


def require(*names: str) -> None:
    """Raise :class:`ModuleNotFoundError` for the first top-level package of ``names`` that
    cannot be found (as ``import name`` would), without importing any of them."""
    for name in names:
        if find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
