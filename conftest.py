"""Repository-level pytest setup.

Keeps pytest out of folders that hold generated output or installed tools, so a bare `pytest`
(or `pytest --phase=...`) in this repository only ever collects gates/ and tests/.
"""

from __future__ import annotations

collect_ignore = ["reports", "node_modules", ".tools", "examples", "docs"]
