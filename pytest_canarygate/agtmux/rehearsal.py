"""The rollback rehearsal (dry-run): whether each step of the runbook's "Rollback Procedure" could
be carried out now, judged without changing anything.

``pytest --phase=rollback --canarygate-stage=rehearsal`` runs the gates of stage "rehearsal"
(``gates/test_rollback_rehearsal.py``); they call these judgements:

- :func:`selector_switchable` (step 1, switch the runtime selector back to v4): the selector is a
  local file the operator running the check may write. Judged with :func:`os.access` on the path
  of the config's selector evidence URI, as the observation recorded it; nothing is opened for
  writing. A selector read over another scheme (the v5 socket, HTTP) cannot be shown switchable
  without writing it: UNOBSERVABLE.
- :func:`v4_takes_canary_back` (step 2, v5 sessions reconnect to v4): v4 is up, ready (a
  pipeline tick completed) and serves every pane v5 serves in each canary session the runtime
  selector names.
- step 3, v4's sources ``Active``: the rollback gates' judgement,
  :func:`~pytest_canarygate.agtmux.gate_support.daemon_sources` for v4.
- :func:`v5_snapshot_possible` (Post-Rollback 1, a v5 snapshot before stopping): v5 answers, its
  newest snapshot holds its current projection version and the restore dry-run on it is Ok.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from collections.abc import Sequence

from pytest_canarygate.agtmux.gate_support import attempt
from pytest_canarygate.agtmux.gate_support import combine
from pytest_canarygate.agtmux.gate_support import daemon_info
from pytest_canarygate.agtmux.gate_support import daemon_uptime
from pytest_canarygate.agtmux.gate_support import one_of
from pytest_canarygate.agtmux.gate_support import ready
from pytest_canarygate.agtmux.gate_support import restore_dry_run_now
from pytest_canarygate.agtmux.gate_support import snapshot_recorded
from pytest_canarygate.agtmux.judgement import Judgement
from pytest_canarygate.agtmux.judgement import Pane
from pytest_canarygate.agtmux.judgement import format_duration
from pytest_canarygate.agtmux.protocol import failure_message
from pytest_canarygate.agtmux.protocol import managed
from pytest_canarygate.agtmux.protocol import panes
from pytest_canarygate.agtmux.protocol import sessions_by_name
from pytest_canarygate.agtmux.protocol import signature_problems
from pytest_canarygate.agtmux.records import RuntimeSelector
from pytest_canarygate.agtmux.settings import AgtmuxSettings
from pytest_canarygate.endpoints import parse_endpoint
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.observation import ObservedView
from pytest_canarygate.verdicts import Unobservable
from pytest_canarygate.verdicts import Verdict

__all__ = [
    "SELECTOR_ACCESSOR",
    "canary_panes_served",
    "daemon_up",
    "selector_switchable",
    "selector_uri",
    "selector_writable",
    "v4_takes_canary_back",
    "v5_snapshot_possible",
]

#: The evidence accessor of the runtime selector; its reading records the URI it was read from.
SELECTOR_ACCESSOR = "runtime_selector"
_LOCAL_ONLY = "the rehearsal can only check a local selector file"

Access = Callable[[str, int], bool]


def _judged(verdict: Verdict, message: str, **numbers: object) -> Judgement:
    return Judgement(verdict=verdict, message=message, numbers=numbers)


# --- step 1: the runtime selector can be switched back to v4 -------------------------------


def selector_uri(observed: ObservedView) -> str | None:
    """The URI the run read the runtime selector from (the config's ``[evidence] selector``,
    else the v5 socket); None when no source was configured. Unobservable when the run did not
    read the selector at all (the gate must need ``evidence:runtime_selector``)."""
    reading = observed.observation.evidence.get(SELECTOR_ACCESSOR)
    if reading is None:
        raise Unobservable(
            f"the runtime selector was not part of this run's observation "
            f"(the gate needs evidence:{SELECTOR_ACCESSOR})"
        )
    return reading.uri


def selector_writable(
    uri: str | None, *, access: Access = os.access, uid: int | None = None
) -> Judgement:
    """Whether the operator running the check (real ``uid``, default this process's) may write
    the runtime selector file at the ``file://`` ``uri``: :func:`os.access` with ``W_OK`` on its
    path, read-only (nothing is opened). PASS when it may; FAIL when it may not, when the path
    is not a regular file, or when the check runs as root and the file's mode lets nobody write
    it (root's ``os.access`` ignores the mode, and a rollback must not rely on overriding a
    read-only selector); UNOBSERVABLE for no URI, a URI that is not ``file://`` or a path that
    cannot be examined."""
    if uri is None:
        return _judged(
            Verdict.UNOBSERVABLE,
            f"no runtime selector source is configured ([evidence] selector): {_LOCAL_ONLY}",
        )
    try:
        endpoint = parse_endpoint(uri)
    except ConfigError as exc:
        return _judged(Verdict.UNOBSERVABLE, f"runtime selector URI: {exc}", uri=uri)
    if endpoint.scheme != "file":
        return _judged(
            Verdict.UNOBSERVABLE,
            f"the runtime selector is read from {uri}, not a file:// URI: {_LOCAL_ONLY} (a "
            f"selector served over {endpoint.scheme} cannot be shown switchable without "
            "switching it)",
            uri=uri,
        )
    path = endpoint.path
    checker = os.getuid() if uid is None else uid
    try:
        found = os.stat(path)
    except OSError as exc:
        return _judged(
            Verdict.UNOBSERVABLE,
            f"runtime selector file {path} cannot be examined: {exc.strerror}",
            uri=uri,
            checker_uid=checker,
        )
    mode = stat.S_IMODE(found.st_mode)
    numbers: dict[str, object] = {
        "uri": uri,
        "path": path,
        "mode": f"{mode:04o}",
        "owner_uid": found.st_uid,
        "checker_uid": checker,
    }
    shown = f"mode {mode:04o}, owner uid {found.st_uid}"
    if not stat.S_ISREG(found.st_mode):
        return _judged(
            Verdict.FAIL,
            f"runtime selector {path} is not a regular file ({shown}): it could not be switched "
            "back to v4 by writing it",
            **numbers,
        )
    writable = access(path, os.W_OK)
    numbers["os_access_w_ok"] = writable
    if not writable:
        return _judged(
            Verdict.FAIL,
            f"runtime selector file {path} is not writable by uid {checker} ({shown}): the "
            "operator running this check could not switch the runtime selector back to v4",
            **numbers,
        )
    if checker == 0 and not mode & 0o222:
        return _judged(
            Verdict.FAIL,
            f"runtime selector file {path} is read-only ({shown}): no one may write it by its "
            "mode; os.access allows it only because the check runs as root, and a rollback must "
            "not rely on root overriding a read-only selector",
            **numbers,
        )
    return _judged(
        Verdict.PASS,
        f"runtime selector file {path} is writable by uid {checker} ({shown}); nothing was written",
        **numbers,
    )


def selector_switchable(observed: ObservedView, *, access: Access = os.access) -> Judgement:
    """:func:`selector_writable` for the selector URI of this run's observation."""
    try:
        uri = selector_uri(observed)
    except Unobservable as exc:
        return _judged(Verdict.UNOBSERVABLE, str(exc))
    return selector_writable(uri, access=access)


# --- step 2: v4 can take the canary sessions back --------------------------------------------


def daemon_up(observed: ObservedView, daemon: str) -> Judgement:
    """The daemon answered ``daemon.info`` with a pid and a start time (else Unobservable)."""
    view = observed.daemon(daemon)
    info = daemon_info(view)
    uptime = daemon_uptime(view, observed.now)
    return _judged(
        Verdict.PASS,
        f"{daemon} up: pid {info.get('pid')}, version {info.get('version')}, "
        f"up {format_duration(uptime)}",
        pid=info.get("pid"),
        version=info.get("version"),
        uptime_s=int(uptime.total_seconds()),
    )


def canary_panes_served(
    selector: RuntimeSelector, v4_panes: Sequence[Pane], v5_panes: Sequence[Pane]
) -> Judgement:
    """v4 serves every canary session the selector names: the session is on v4 with a managed
    pane, every pane v5 lists in it is on v4 in that session (managed where v5 manages it), and
    v4's managed panes there are well-formed. INCONCLUSIVE when the selector names no canary
    session (nothing to take back)."""
    named = selector.v5_canary_sessions
    if not named:
        return _judged(
            Verdict.INCONCLUSIVE,
            "the runtime selector names no canary session (v5_canary_sessions is empty): no "
            "canary session to show v4 serving; rehearse while the selector names them",
            canary_sessions=[],
        )
    on_v4, on_v5 = sessions_by_name(v4_panes), sessions_by_name(v5_panes)
    v4_by_id = {str(p.get("pane_id")): p for p in v4_panes}
    problems: list[str] = []
    served: dict[str, int] = {}
    for name in named:
        mine = on_v4.get(name)
        if not mine:
            problems.append(f"canary session {name} is not on v4")
            continue
        served[name] = len(managed(mine))
        if not served[name]:
            problems.append(f"canary session {name} has no managed pane on v4")
        for pane in on_v5.get(name, ()):
            pane_id = str(pane.get("pane_id"))
            there = v4_by_id.get(pane_id)
            if there is None or there.get("session_name") != name:
                problems.append(f"canary session {name}: pane {pane_id} is on v5, not on v4")
            elif pane.get("presence") == "managed" and there.get("presence") != "managed":
                problems.append(
                    f"canary session {name}: pane {pane_id} is managed on v5, "
                    f"{there.get('presence')} on v4"
                )
        for pane in managed(mine):
            problems += [
                f"canary session {name}: v4 pane {pane.get('pane_id')}: {problem}"
                for problem in signature_problems(dict(pane))
            ]
    numbers = {"canary_sessions": list(named), "v4_managed_panes": served}
    if problems:
        return _judged(
            Verdict.FAIL,
            failure_message("v4 does not serve every canary session's panes", problems),
            **numbers,
            problems=len(problems),
        )
    shown = ", ".join(f"{name} ({count} managed panes)" for name, count in served.items())
    return _judged(
        Verdict.PASS,
        f"v4 serves every pane v5 serves in the canary sessions: {shown}",
        **numbers,
        problems=0,
    )


def v4_takes_canary_back(observed: ObservedView) -> Judgement:
    """v4 up, ready (a pipeline tick completed) and serving every canary session's panes
    (:func:`canary_panes_served`, the canary sessions being those the runtime selector names)."""

    def canary() -> Judgement:
        selector = one_of(observed, SELECTOR_ACCESSOR, RuntimeSelector)
        return canary_panes_served(
            selector, panes(observed.daemon("v4")), panes(observed.daemon("v5"))
        )

    return combine(
        "v4 not shown ready to take the canary sessions back",
        {
            "up": attempt(lambda: daemon_up(observed, "v4")),
            "readiness": attempt(lambda: ready(observed, "v4")),
            "canary sessions": attempt(canary),
        },
    )


# --- Post-Rollback 1: a v5 snapshot can be taken before stopping -----------------------------


def v5_snapshot_possible(observed: ObservedView, settings: AgtmuxSettings) -> Judgement:
    """v5 answers, its newest snapshot is ``snap-<n>`` metadata at v5's current projection
    version and the restore dry-run recomputed on it (within the max age) is Ok (the snapshot
    gates' judgements)."""
    return combine(
        "a v5 snapshot not shown possible",
        {
            "v5": attempt(lambda: daemon_up(observed, "v5")),
            "snapshot": attempt(lambda: snapshot_recorded(observed, settings)),
            "restore dry-run": attempt(lambda: restore_dry_run_now(observed, settings)),
        },
    )
