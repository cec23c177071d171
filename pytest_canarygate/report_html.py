"""Render a verified bundle as one offline HTML file that opens on its verdict.

The report is derived from the bundle and is not evidence, so it never goes inside it (a bundle
holds its signed files and envelope only): by default it is ``<bundle>.html`` beside the bundle.
The bundle is verified first, against keys the caller trusts; one that does not verify is
refused and nothing is written. The file is written through a temporary file and a rename in
its folder, never through a symlink.

Allure 3 (npm package ``allure``) renders the gates. Only the Allure this installation owns is
run: ``--allure PATH``, else ``$CANARYGATE_ALLURE``, else the one the Makefile installs in the
checkout this package runs from (``.tools/allure/node_modules/.bin/allure``); never one found
near the bundle or on ``PATH``. It must be owned by the invoking user or root, writable by
nobody else, and be version 3.

Analytics: Allure 3 (3.18) hard-wires a Google Analytics snippet into its ``awesome``,
``classic`` and ``dashboard`` reports; only its ``allure2`` report honours the documented
opt-out ``ALLURE_NO_ANALYTICS=true``. So we render the ``allure2`` report in single-file mode
with that variable set, from an empty working directory (no stray ``allurerc`` is picked up),
and then scan the HTML, including the scripts embedded as base64 ``data:`` URIs, for analytics
hosts and for scripts, styles or frames loaded from the network. Any hit fails the rendering
and nothing is written: we do not strip what Allure emits. What we add, the verdict banner and
the title, is plain escaped HTML.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import html
import os
import re
import stat
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pytest_canarygate.cli import EXIT_FAILED
from pytest_canarygate.cli import EXIT_MALFORMED
from pytest_canarygate.cli import EXIT_OK
from pytest_canarygate.cli import EXIT_USAGE
from pytest_canarygate.errors import CanarygateError
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.signing import ENVELOPE_NAME
from pytest_canarygate.textsafe import visible
from pytest_canarygate.verify import VerifyResult
from pytest_canarygate.verify import load_keys
from pytest_canarygate.verify import summarize
from pytest_canarygate.verify import verify_bundle

__all__ = [
    "ALLURE_ENV_VAR",
    "ANALYTICS_MARKERS",
    "INSTALL_COMMAND",
    "LOCAL_ALLURE",
    "AllureNotFound",
    "BundleRefusedError",
    "HtmlReportError",
    "NotABundleError",
    "OutputRefusedError",
    "add_subcommand",
    "default_output",
    "find_allure",
    "installation_root",
    "offline_problems",
    "render_html",
]

ALLURE_ENV_VAR = "CANARYGATE_ALLURE"
LOCAL_ALLURE = Path(".tools") / "allure" / "node_modules" / ".bin" / "allure"
INSTALL_COMMAND = "make html-tool (npm install --prefix .tools/allure allure@3)"
RESULTS_DIR = "allure-results"
REPORT_FILE = "index.html"
REPORT_SUFFIX = ".html"
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
    """The directory to render is not an evidence bundle (no envelope or ``allure-results/``)."""


class BundleRefusedError(HtmlReportError):
    """The bundle does not verify against the trusted keys: nothing of it is rendered."""


class OutputRefusedError(HtmlReportError):
    """The output would land inside the bundle, or be written through a symlink."""


def installation_root() -> Path | None:
    """The checkout this package runs from (a source or editable install), where the Makefile
    installs Allure; None for an installed wheel."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def find_allure(explicit: Path | None = None, *, environ: Mapping[str, str] | None = None) -> Path:
    """The Allure 3 executable this installation owns (see the module docstring).

    An explicit path or ``$CANARYGATE_ALLURE`` is the only candidate when given: a wrong value
    is an error, never silently replaced by another Allure.
    """
    env = os.environ if environ is None else environ
    if explicit is not None:
        candidate, named = Path(explicit).expanduser(), f"--allure {explicit}"
    elif env.get(ALLURE_ENV_VAR):
        candidate = Path(env[ALLURE_ENV_VAR]).expanduser()
        named = f"${ALLURE_ENV_VAR}={env[ALLURE_ENV_VAR]}"
    else:
        root = installation_root()
        if root is None:
            raise AllureNotFound(
                "Allure 3 not found: this installation has no checkout to hold it; name one "
                f"with --allure PATH or ${ALLURE_ENV_VAR}"
            )
        candidate = root / LOCAL_ALLURE
        named = str(candidate)
    if not (candidate.is_file() and os.access(candidate, os.X_OK)):
        raise AllureNotFound(
            f"Allure 3 not found at {named} (no executable there). Install it with "
            f"`{INSTALL_COMMAND}`, or name one with --allure PATH or ${ALLURE_ENV_VAR}."
        )
    problem = _ownership_problem(candidate)
    if problem:
        raise AllureNotFound(f"refusing to run Allure at {named}: {problem}")
    version = _allure_version(candidate, env)
    if version is None or not version.startswith("3."):
        raise AllureNotFound(
            f"Allure at {named} is not Allure 3 (version {version or 'unknown'}); install it "
            f"with `{INSTALL_COMMAND}`"
        )
    return candidate


def _ownership_problem(executable: Path) -> str | None:
    """Why the executable (and the file its links lead to) may not be run: owned by someone
    other than the invoking user or root, or writable by group or others."""
    for path in dict.fromkeys((Path(os.path.abspath(executable)), executable.resolve())):
        info = path.stat()
        if info.st_uid not in (os.getuid(), 0):
            return f"{path} is owned by uid {info.st_uid}, not by you or root"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):o})"
    return None


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


def default_output(bundle_dir: Path) -> Path:
    """Where the report of a bundle goes by default: ``<bundle>.html`` beside it."""
    bundle = Path(os.path.abspath(bundle_dir))
    return bundle.with_name(bundle.name + REPORT_SUFFIX)


def render_html(
    bundle_dir: Path,
    output: Path | None = None,
    *,
    trusted_keys: Mapping[str, Any],
    allure: Path | None = None,
    environ: Mapping[str, str] | None = None,
    signer_names: Mapping[str, str] | None = None,
) -> Path:
    """Verify the bundle against ``trusted_keys``, then render it to ``output`` (default
    :func:`default_output`), a single HTML file opening on the verdict. Returns its path.
    ``signer_names`` (key id -> name, from the config's ``[[signers]]``) names who signed.

    Raises :class:`BundleRefusedError`, :class:`OutputRefusedError`, :class:`AllureNotFound` or
    :class:`HtmlReportError`; on any failure nothing is written.
    """
    bundle = Path(os.path.abspath(bundle_dir))
    if not (bundle / ENVELOPE_NAME).exists() or not (bundle / RESULTS_DIR).is_dir():
        raise NotABundleError(
            f"{bundle}: no {ENVELOPE_NAME} and {RESULTS_DIR}/ (not an evidence bundle)"
        )
    target = Path(os.path.abspath(output)) if output is not None else default_output(bundle)
    _check_output(bundle, target)
    verified = verify_bundle(bundle, trusted_keys)
    if not verified.ok:
        raise BundleRefusedError(
            f"{bundle}: {verified.status.value}, not rendered: "
            + "; ".join(verified.problems or ["no trusted signature"])
        )
    env = dict(os.environ if environ is None else environ)
    executable = allure or find_allure(environ=env)
    env["ALLURE_NO_ANALYTICS"] = "true"
    heading = report_heading(verified)
    with tempfile.TemporaryDirectory(prefix="canarygate-html-") as staging:
        _run_allure(executable, bundle / RESULTS_DIR, Path(staging), heading, env)
        produced = Path(staging) / "report" / REPORT_FILE
        if not produced.is_file():
            raise HtmlReportError(f"Allure ({executable}) wrote no {REPORT_FILE}")
        rendered = produced.read_text(encoding="utf-8", errors="replace")
    problems = offline_problems(rendered)
    if problems:
        raise HtmlReportError(
            f"refusing the rendered report: it is not offline and analytics-free "
            f"({'; '.join(problems)}); Allure {executable} did not honour "
            "ALLURE_NO_ANALYTICS=true"
        )
    named = dict(signer_names or {})
    _write_beside(target, with_verdict(rendered, verified, heading, named))
    return target


def _check_output(bundle: Path, target: Path) -> None:
    if target == bundle or target.is_relative_to(bundle):
        raise OutputRefusedError(
            f"{target}: inside the bundle; the report would become an unlisted file of the "
            "signed evidence (it goes beside the bundle)"
        )
    for path, what in ((target, "the output"), (target.parent, "the output's folder")):
        if path.is_symlink():
            raise OutputRefusedError(f"{path}: {what} is a symbolic link; not writing through it")
    if os.path.lexists(target) and not target.is_file():
        raise OutputRefusedError(f"{target}: exists and is not a regular file")
    if not target.parent.is_dir():
        raise OutputRefusedError(f"{target.parent}: no such folder")


def _write_beside(target: Path, text: str) -> None:
    """Write ``target`` through a temporary file in its folder and a rename, which replaces a
    symlink planted meanwhile instead of following it."""
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def report_heading(verified: VerifyResult) -> str:
    """The report's title: migration, phase and when the run finished."""
    summary = summarize(verified)
    parts = [summary["migration"], summary["phase"], summary["finished_at"]]
    return " ".join(visible(str(p)) for p in parts if p)


def with_verdict(
    rendered: str,
    verified: VerifyResult,
    heading: str,
    signer_names: Mapping[str, str] | None = None,
) -> str:
    """Allure's page with our title and, first in its body, the verdict: promotable or not and
    why, who signed, and SIMULATED or an ephemeral key in large letters."""
    banner = verdict_banner(verified, signer_names)
    titled, count = re.subn(
        r"<title>.*?</title>",
        f"<title>{html.escape(heading)}</title>",
        rendered,
        count=1,
        flags=re.IGNORECASE | re.DOTALL,
    )
    if count == 0:
        titled = titled.replace("<head>", f"<head><title>{html.escape(heading)}</title>", 1)
    body = re.search(r"<body[^>]*>", titled, flags=re.IGNORECASE)
    if body is None:
        raise HtmlReportError("the rendered report has no <body> to put the verdict in")
    return titled[: body.end()] + banner + titled[body.end() :]


def verdict_banner(verified: VerifyResult, signer_names: Mapping[str, str] | None = None) -> str:
    """The verdict as static, escaped HTML (no script, nothing loaded); the signer by key id,
    and by name where ``signer_names`` has it."""
    summary = summarize(verified)
    esc = html.escape
    warnings = []
    if summary["simulated"]:
        warnings.append(SIMULATED_BANNER)
    if summary["signer"]["ephemeral"]:
        warnings.append(EPHEMERAL_BANNER)
    promotable = summary["promotable"]
    verdict = "PROMOTABLE" if promotable else "NOT PROMOTABLE"
    colour = "#1b5e20" if promotable and not warnings else "#b71c1c"
    lines = [
        f'<div id="canarygate-verdict" style="font-family:sans-serif;padding:16px 24px;'
        f'border-bottom:4px solid {colour};background:#fafafa">'
    ]
    lines += [
        f'<div style="font-size:32px;font-weight:bold;color:#b71c1c">{esc(w)}</div>'
        for w in warnings
    ]
    lines.append(
        f'<div style="font-size:26px;font-weight:bold;color:{colour}">'
        f"{esc(str(summary['migration']))} · {esc(str(summary['phase']))} · {verdict}</div>"
    )
    reasons = summary["not_promotable_because"]
    if not promotable:
        lines.append("<ul>")
        lines += [f"<li>{esc(str(r))}</li>" for r in reasons or ["the statement does not say"]]
        lines.append("</ul>")
    keyid = str(summary["signer"]["keyid"])
    name = (signer_names or {}).get(keyid)
    who = f"{esc(name)} (key {esc(keyid)})" if name else f"key {esc(keyid)}"
    runbook = _runbook_link(verified)
    counts = ", ".join(f"{n} {esc(str(v))}" for v, n in summary["gate_counts"].items())
    lines.append(
        f"<div>verified {esc(verified.status.value)} · signed by {who} · run finished "
        f"{esc(str(summary['finished_at']))} · gates: {counts or 'none'}{runbook}</div>"
    )
    lines.append("</div>")
    return "".join(lines)


def _runbook_link(verified: VerifyResult) -> str:
    """A link, from the report beside the bundle, to the signed runbook text inside it."""
    subjects = (verified.statement or {}).get("subject") or []
    names = [s.get("name") for s in subjects if isinstance(s, dict)]
    documents = [n for n in names if isinstance(n, str) and n.startswith("runbook/")]
    if not documents:
        return ""
    href = html.escape(quote(f"{verified.bundle.name}/{documents[0]}"), quote=True)
    return f' · <a href="{href}">the runbook text this run was judged against</a>'


SIMULATED_BANNER = "SIMULATED: never a sign-off for a real migration"
EPHEMERAL_BANNER = "EPHEMERAL KEY: signed with a throwaway key, never a sign-off"


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


def signer_names(config: Path | None) -> dict[str, str]:
    """Key id -> name of the ``[[signers]]`` of ``config`` (default ``./canarygate.toml``,
    when there is one); a named config that cannot be read is a ConfigError."""
    from pytest_canarygate.attestation import parse_signers
    from pytest_canarygate.config import read_toml

    path = config if config is not None else Path("canarygate.toml")
    if config is None and not path.is_file():
        return {}
    _, data = read_toml(path)
    signers = parse_signers(data.get("signers"), path.parent, str(path))
    return {s.keyid: s.name for s in signers}


def _run_html(args: argparse.Namespace) -> int:
    shown = visible(args.bundle)
    if not os.path.isdir(args.bundle):
        what = "not a directory" if os.path.lexists(args.bundle) else "no such directory"
        print(f"canarygate html: error: bundle {shown}: {what}", file=sys.stderr)
        return EXIT_USAGE if what == "no such directory" else EXIT_MALFORMED
    trusted = load_keys(args, "html")
    if isinstance(trusted, int):
        return trusted
    try:
        names = signer_names(Path(args.config) if args.config else None)
        target = render_html(
            Path(args.bundle),
            Path(args.output) if args.output else None,
            trusted_keys=trusted,
            allure=Path(args.allure) if args.allure else None,
            signer_names=names,
        )
    except CanarygateError as exc:
        print(f"canarygate html: error: {visible(str(exc))}", file=sys.stderr)
        if isinstance(exc, NotABundleError):
            return EXIT_MALFORMED
        return EXIT_USAGE if isinstance(exc, (OutputRefusedError, ConfigError)) else EXIT_FAILED
    print(f"HTML report: {visible(str(target))}")
    print("(derived from the verified bundle; the bundle itself is the evidence)")
    return EXIT_OK


def add_subcommand(subparsers: Any) -> None:
    """Add ``canarygate html``."""
    parser = subparsers.add_parser(
        "html",
        help="Verify a bundle, then render it as a single offline HTML file beside it",
        description="Verify BUNDLE against the trusted keys, then render it with Allure 3 into "
        "one self-contained HTML file with no analytics that opens on the verdict. The report "
        "is derived: it goes beside the bundle, never into it.",
        epilog=f"Allure 3: --allure PATH, else ${ALLURE_ENV_VAR}, else the one `make html-tool` "
        f"installs in this checkout ({LOCAL_ALLURE.as_posix()}); never one found near the "
        f"bundle or on PATH. Exit codes: {EXIT_OK} written, {EXIT_FAILED} refused or failed "
        f"(the bundle does not verify, Allure missing or failing, analytics found), "
        f"{EXIT_USAGE} usage error (no such BUNDLE, output inside the bundle or through a "
        f"symlink), {EXIT_MALFORMED} not an evidence bundle or a bad key file; the full table "
        "is in `canarygate --help`.",
    )
    parser.add_argument("bundle", metavar="BUNDLE", help="Bundle directory")
    keys = parser.add_mutually_exclusive_group(required=True)
    keys.add_argument(
        "--key", metavar="PUB", action="append", help="Trusted public key file; repeatable"
    )
    keys.add_argument("--trusted-keys", metavar="DIR", help="Directory of trusted public keys")
    parser.add_argument(
        "--output", metavar="FILE", help="The HTML file to write (default: BUNDLE.html beside it)"
    )
    parser.add_argument("--allure", metavar="PATH", help="The Allure 3 executable to run")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="Config whose [[signers]] name the signing keys (default: ./canarygate.toml when "
        "there is one)",
    )
    parser.set_defaults(func=_run_html)
