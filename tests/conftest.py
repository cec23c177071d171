"""Shared fixtures for the engine's own tests."""

from __future__ import annotations

# Imported once, before any test: the engine loads the signing libraries only when it signs,
# and pytester forgets every module first imported during a test. A library loaded a second
# time in one process fails its own type checks (``Encryption algorithm must be a
# KeySerializationEncryption instance``) against objects of the first load.
import cryptography.hazmat.primitives.serialization  # noqa: F401
import securesystemslib.signer  # noqa: F401

pytest_plugins = ["pytester"]
