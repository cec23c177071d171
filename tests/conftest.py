"""Shared fixtures for the engine's own tests."""

from __future__ import annotations

import signal

# Imported once, before any test: the engine loads the signing libraries only when it signs,
# and pytester forgets every module first imported during a test. A library loaded a second
# time in one process fails its own type checks (``Encryption algorithm must be a
# KeySerializationEncryption instance``) against objects of the first load.
import cryptography.hazmat.primitives.serialization  # noqa: F401
import securesystemslib.signer  # noqa: F401

pytest_plugins = ["pytester"]

# A suite started in the background by a script (``make test &``, nohup) begins with SIGINT
# ignored, and every process a test starts would inherit that: the tests that press Ctrl-C on a
# run or a fleet then wait for nothing. Ignoring is inherited, a handler is not: with Python's
# own handler here, each child starts with SIGINT as a terminal would leave it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
