"""pytest-canarygate: gate a phased daemon migration with pytest.

Every checklist item of a migration runbook becomes a gate that judges live evidence and ends
PASS, FAIL, UNOBSERVABLE, INCONCLUSIVE or WAIVED; the run leaves an evidence bundle behind.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from pytest_canarygate.gate import gate
from pytest_canarygate.observation import ObservedView
from pytest_canarygate.verdicts import GateFailed
from pytest_canarygate.verdicts import Inconclusive
from pytest_canarygate.verdicts import Unobservable
from pytest_canarygate.verdicts import Verdict

try:
    __version__ = _version("pytest-canarygate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "GateFailed",
    "Inconclusive",
    "ObservedView",
    "Unobservable",
    "Verdict",
    "__version__",
    "gate",
]
