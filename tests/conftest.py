"""Shared fixtures for the engine's own tests."""

from __future__ import annotations

pytest_plugins = ["pytester"]
