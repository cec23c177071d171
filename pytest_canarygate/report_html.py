"""Render a bundle's Allure results as one offline HTML file with Allure 3 (npm package ``allure``).

The HTML is derived from the bundle and is not evidence: it goes to ``<bundle>/html/index.html``
by default, and ``html/`` is excluded from the signed subjects.

Allure 3 is ``$CANARYGATE_ALLURE`` when that is set; otherwise it is looked up, in order, at
``<repo>/.tools/allure/node_modules/.bin/allure`` (``<repo>``: the first directory holding a
``pyproject.toml`` above the bundle, then above the working directory), and as ``allure`` on
``PATH``; it must be version 3. Install it locally with
``npm install --prefix .tools/allure allure@3``.

Analytics: Allure 3 (3.18) hard-wires a Google Analytics snippet into its ``awesome``,
``classic`` and ``dashboard`` reports; only its ``allure2`` report honours the documented
opt-out ``ALLURE_NO_ANALYTICS=true``. So we render the ``allure2`` report in single-file mode
with that variable set, from an empty working directory (no stray ``allurerc`` is picked up),
and then scan the HTML, including the scripts embedded as base64 ``data:`` URIs, for analytics
hosts and for scripts, styles or frames loaded from the network. Any hit fails the rendering
and nothing is written: we do not strip what Allure emits.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_canarygate.cli import EXIT_FAILED
from pytest_canarygate.cli import EXIT_MALFORMED
from pytest_canarygate.cli import EXIT_OK
from pytest_canarygate.cli import EXIT_USAGE
from pytest_canarygate.errors import CanarygateError
from pytest_canarygate.signing import DERIVED_DIR

__all__ = [
    "ALLURE_ENV_VAR",
    "ANALYTICS_MARKERS",
    "INSTALL_COMMAND",
    "LOCAL_ALLURE",
    "AllureNotFound",
    "HtmlReportError",
    "NotABundleError",
    "OutputRefusedError",
    "add_subcommand",
    "find_allure",
    "find_repo_root",
    "offline_problems",
    "render_html",
]

ALLURE_ENV_VAR = "CANARYGATE_ALLURE"
LOCAL_ALLURE = Path(".tools") / "allure" / "node_modules" / ".bin" / "allure"
INSTALL_COMMAND = "npm install --prefix .tools/allure allure@3"
RESULTS_DIR = "allure-results"
REPORT_FILE = "index.html"
ANALYTICS_MARKERS = (
    "googletagmanager.com",
    "google-analytics.com",
    "analytics.google.com",
    "doubleclick.net",
    "gtag/js",
)
_TIMEOUT = 600.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_VERSION = re.compile(r"(\d+)\.\d+\.\d+")
_DATA_URI = re.compile(r"data:[\w.+/-]+;base64,([A-Za-z0-9+/=]+)")
_REMOTE_LOAD = re.compile(
    r"<(?:script|link|iframe|img)\b[^>]*?\s(?:src|href)\s*=\s*[\"']?(?:https?:)?//[^\s\"'>]+",
    re.IGNORECASE,
)


class AllureNotFound(CanarygateError):
    """No usable Allure 3 command line was found; the message says where we looked."""


class HtmlReportError(CanarygateError):
    """Allure failed, or its output is not an offline, analytics-free single file."""


class NotABundleError(HtmlReportError):
    """The directory to render is not an evidence bundle (it has no ``allure-results/``)."""


class OutputRefusedError(HtmlReportError):
    """The output directory would put the report among the bundle's signed files."""


def find_repo_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` that holds a ``pyproject.toml``."""
    start = Path(os.path.abspath(start))
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file():
            return directory
    return None


def find_allure(
    start_dirs: Iterable[Path] = (), *, environ: Mapping[str, str] | None = None
) -> Path:
    """Locate the Allure 3 executable (see the module docstring for the search order).

    ``$CANARYGATE_ALLURE``, when set, is the only candidate: a wrong value is an error, never
    silently replaced by another Allure.
    """
    env = os.environ if environ is None else environ
    explicit = env.get(ALLURE_ENV_VAR)
    if explicit:
        candidates = [Path(explicit).expanduser()]
        looked = [f"${ALLURE_ENV_VAR}={explicit}"]
    else:
        candidates, looked = _allure_candidates(start_dirs, env)
    wrong_versions: list[str] = []
    for candidate in candidates:
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        version = _allure_version(candidate, env)
        if version is not None and version.startswith("3."):
            return candidate
        wrong_versions.append(f"{candidate} (version {version or 'unknown'})")
    message = f"Allure 3 not found; looked at: {', '.join(looked)}."
    if wrong_versions:
        message += f" Not Allure 3: {', '.join(wrong_versions)}."
    raise AllureNotFound(
        f"{message} Install it in the repository root with `{INSTALL_COMMAND}` "
        f"(needs Node.js), or point {ALLURE_ENV_VAR} at an Allure 3 executable."
    )


def _allure_candidates(
    start_dirs: Iterable[Path], env: Mapping[str, str]
) -> tuple[list[Path], list[str]]:
    """Candidate executables in search order, and a description of where we looked."""
    candidates: list[Path] = []
    looked: list[str] = []
    starts = [Path(os.path.abspath(start)) for start in (*start_dirs, Path.cwd())]
    roots: list[Path] = []
    for start in starts:
        root = find_repo_root(start)
        if root is not None and root not in roots:
            roots.append(root)
    for root in roots:
        candidates.append(root / LOCAL_ALLURE)
        looked.append(str(root / LOCAL_ALLURE))
    if not roots:
        where = " or ".join(str(start) for start in starts)
        looked.append(f"<repo>/{LOCAL_ALLURE.as_posix()} (no pyproject.toml above {where})")
    on_path = shutil.which("allure", path=env.get("PATH", os.defpath))
    looked.append("allure on PATH")
    if on_path:
        candidates.append(Path(on_path))
    return candidates, looked


def _allure_version(executable: Path, env: Mapping[str, str]) -> str | None:
    try:
        completed = subprocess.run(
            [os.fspath(executable), "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(env),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(_ANSI.sub("", completed.stdout))
    return match.group(0) if completed.returncode == 0 and match else None


def offline_problems(html: str) -> list[str]:
    """Analytics hosts and network-loaded resources found in ``html`` (and its data: URIs)."""
    problems: list[str] = []
    texts = [("the HTML", html.lower())]
    for index, match in enumerate(_DATA_URI.finditer(html)):
        try:
            decoded = base64.b64decode(match.group(1), validate=True)
        except (binascii.Error, ValueError):
            continue
        texts.append(
            (f"embedded data URI #{index + 1}", decoded.decode("utf-8", "replace").lower())
        )
    for where, text in texts:
        problems += [f"{where} mentions {marker}" for marker in ANALYTICS_MARKERS if marker in text]
    problems += [f"the HTML loads {tag.strip()[:120]}" for tag in _REMOTE_LOAD.findall(html)]
    return problems


def render_html(
    bundle_dir: Path,
    out_dir: Path | None = None,
    *,
    allure: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """Render ``<bundle>/allure-results`` to ``<out_dir>/index.html`` (default ``<bundle>/html``).

    Returns the path of the single HTML file. Raises :class:`AllureNotFound` or
    :class:`HtmlReportError`; on any failure nothing is written to ``out_dir``.
    """
    bundle = Path(os.path.abspath(bundle_dir))
    results = bundle / RESULTS_DIR
    if not results.is_dir():
        raise NotABundleError(f"{bundle}: no {RESULTS_DIR}/ directory (not an evidence bundle?)")
    out = bundle / DERIVED_DIR if out_dir is None else Path(os.path.abspath(out_dir))
    derived = bundle / DERIVED_DIR
    if out.is_relative_to(bundle) and not out.is_relative_to(derived):
        raise OutputRefusedError(
            f"{out}: inside the bundle but outside {DERIVED_DIR}/; the report would become an "
            "unlisted file of the signed evidence"
        )
    env = dict(os.environ if environ is None else environ)
    executable = allure or find_allure([bundle], environ=env)
    env["ALLURE_NO_ANALYTICS"] = "true"
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".render-", dir=out))
    try:
        _run_allure(executable, results, staging, f"canarygate {bundle.name}", env)
        produced = staging / "report" / REPORT_FILE
        if not produced.is_file():
            raise HtmlReportError(f"Allure ({executable}) wrote no {REPORT_FILE}")
        problems = offline_problems(produced.read_text(encoding="utf-8", errors="replace"))
        if problems:
            raise HtmlReportError(
                f"refusing the rendered report: it is not offline and analytics-free "
                f"({'; '.join(problems)}); Allure {executable} did not honour "
                "ALLURE_NO_ANALYTICS=true"
            )
        target = out / REPORT_FILE
        os.replace(produced, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _run_allure(
    executable: Path, results: Path, staging: Path, name: str, env: Mapping[str, str]
) -> None:
    workdir = staging / "cwd"
    workdir.mkdir()
    command = [
        os.fspath(executable),
        "allure2",
        os.fspath(results),
        "--single-file",
        "--output",
        os.fspath(staging / "report"),
        "--report-name",
        name,
    ]
    try:
        completed = subprocess.run(
            command,
            cwd=workdir,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise HtmlReportError(f"Allure ({executable}) did not finish in {_TIMEOUT:.0f}s") from None
    except OSError as exc:
        raise HtmlReportError(f"cannot run Allure ({executable}): {exc.strerror or exc}") from None
    if completed.returncode != 0:
        output = _ANSI.sub("", f"{completed.stderr}\n{completed.stdout}").strip()
        tail = "\n".join(output.splitlines()[-15:])
        raise HtmlReportError(
            f"Allure ({executable}) failed (exit {completed.returncode}):\n{tail}"
        )


def _run_html(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.bundle):
        what = "not a directory" if os.path.lexists(args.bundle) else "no such directory"
        print(f"canarygate html: error: bundle {args.bundle}: {what}", file=sys.stderr)
        return EXIT_USAGE if what == "no such directory" else EXIT_MALFORMED
    try:
        target = render_html(Path(args.bundle), Path(args.out) if args.out else None)
    except CanarygateError as exc:
        print(f"canarygate html: error: {exc}", file=sys.stderr)
        if isinstance(exc, NotABundleError):
            return EXIT_MALFORMED
        return EXIT_USAGE if isinstance(exc, OutputRefusedError) else EXIT_FAILED
    print(f"HTML report: {target}")
    print("(derived from the bundle; the signed allure-results are the evidence)")
    return EXIT_OK


def add_subcommand(subparsers: Any) -> None:
    """Add ``canarygate html``."""
    parser = subparsers.add_parser(
        "html",
        help="Render a bundle's Allure results as a single offline HTML file",
        description="Render BUNDLE/allure-results with Allure 3 into one self-contained HTML "
        "file with no analytics. The report is derived; it is not part of the signed evidence.",
        epilog=f"Allure 3: ${ALLURE_ENV_VAR}, <repo>/{LOCAL_ALLURE.as_posix()} or `allure` on "
        f"PATH; install with `{INSTALL_COMMAND}` in the repository root. Exit codes: "
        f"{EXIT_OK} written, {EXIT_FAILED} failed (Allure missing or failing, analytics "
        f"found), {EXIT_USAGE} usage error (no such BUNDLE, --out inside the bundle outside "
        f"{DERIVED_DIR}/), {EXIT_MALFORMED} not an evidence bundle (no {RESULTS_DIR}/); the "
        "full table is in `canarygate --help`.",
    )
    parser.add_argument("bundle", metavar="BUNDLE", help="Bundle directory")
    parser.add_argument(
        "--out", metavar="DIR", help="Output directory (default: BUNDLE/html); gets index.html"
    )
    parser.set_defaults(func=_run_html)
