"""Allow ``python -m pytest_canarygate``."""

from __future__ import annotations

import sys

from pytest_canarygate.cli import main

sys.exit(main())
