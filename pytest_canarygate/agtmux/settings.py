"""The agtmux pack's own config tables: ``[sources]``, ``[parity.*]``, ``[windows]``,
``[thresholds]`` and ``[release]``, read into a frozen :class:`AgtmuxSettings`
(``config.pack_settings``).

Every mistake raises a ConfigError naming the file and the key, like the engine's tables.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from pytest_canarygate.agtmux.versions import parse_version
from pytest_canarygate.config import AT_LEAST
from pytest_canarygate.config import AT_MOST
from pytest_canarygate.config import TableReader
from pytest_canarygate.config import bounded
from pytest_canarygate.errors import ConfigError

#: The tables this module reads.
TABLES = ("sources", "parity", "windows", "thresholds", "release")

DEFAULT_PANE_FIELDS = (
    "pane_id",
    "presence",
    "evidence_mode",
    "activity_state",
    "provider",
    "signature_class",
)
DEFAULT_PANE_IGNORE = ("updated_at", "conversation_title", "git_branch")
DEFAULT_SESSION_FIELDS = ("session_key", "evidence_mode", "winner_tier", "activity_state")
DEFAULT_SESSION_IGNORE = ("updated_at", "deterministic_last_seen")
DEFAULT_EXPECTED_HEALTHY = ("claude_hooks", "claude_jsonl", "codex_appserver", "poller")


@dataclass(frozen=True)
class ParityConfig:
    """Which fields a parity gate compares; ``fields=None`` means every field not ignored."""

    fields: tuple[str, ...] | None
    ignore: tuple[str, ...]

    def compared(self, keys: Set[str]) -> list[str]:
        """The fields to compare, given the union of keys seen on both sides."""
        if self.fields is not None:
            return list(self._named)
        return sorted(set(keys) - self._ignored)

    @cached_property
    def _named(self) -> tuple[str, ...]:
        """The fields compared when they are named (``fields`` set): the same for every record."""
        return tuple(sorted(set(self.fields or ()) - self._ignored))

    @cached_property
    def _ignored(self) -> frozenset[str]:
        return frozenset(self.ignore)


#: The largest window: a year. History asked for reaches back four times the gradual window plus
#: an hour, so nothing derived from these overflows date arithmetic.
MAX_WINDOW_DAYS = 366
MAX_WINDOW_H = MAX_WINDOW_DAYS * 24


@dataclass(frozen=True)
class Windows:
    """Time windows of the runbook (config ``[windows]``): each above 0 and at most a year
    (archive retention at most ten). The defaults are the runbook's numbers, floors: a shorter
    window makes a run no sign-off."""

    alpha_monitor_h: float = bounded(24.0, maximum=MAX_WINDOW_H, unit="hours", runbook=AT_LEAST)
    canary_duration_h: float = bounded(48.0, maximum=MAX_WINDOW_H, unit="hours", runbook=AT_LEAST)
    gradual_days: float = bounded(7.0, maximum=MAX_WINDOW_DAYS, unit="days", runbook=AT_LEAST)
    cutover_stable_days: float = bounded(
        7.0, maximum=MAX_WINDOW_DAYS, unit="days", runbook=AT_LEAST
    )
    escalate_days: float = bounded(7.0, maximum=MAX_WINDOW_DAYS, unit="days", runbook=AT_LEAST)
    archive_retention_days: float = bounded(30.0, maximum=3660, unit="days", runbook=AT_LEAST)
    #: "Backup taken before migration start": how long before the start a backup still counts
    #: (not a runbook number: the runbook names no age; a week by default).
    backup_max_age_days: float = bounded(7.0, maximum=MAX_WINDOW_DAYS, unit="days")

    def longest(self) -> timedelta:
        """The longest window history must cover, which bounds how much history is asked for
        (the gradual phase's restart rate is compared with a baseline as long as the phase
        before it: room for a phase of up to twice ``gradual_days``)."""
        hours = [self.alpha_monitor_h, self.canary_duration_h]
        days = [self.gradual_days * 4, self.cutover_stable_days, self.escalate_days]
        return max(timedelta(hours=max(hours)), timedelta(days=max(days)))


@dataclass(frozen=True)
class Thresholds:
    """Numbers the runbook and the daemon facts fix (config ``[thresholds]``), each above 0
    and at most what it could mean for the runbook."""

    #: The SLO's p95 boundary: at most a minute.
    latency_p95_ms: int = bounded(3000, maximum=60_000, unit="milliseconds", runbook=AT_MOST)
    #: "p95 breach > N consecutive windows": the signal fires on an unbroken breach spanning
    #: more than this many 10-minute SLO evaluation windows (not poll ticks): at most 10,000.
    breach_windows: int = bounded(3, maximum=10_000, unit="evaluations", runbook=AT_MOST)
    #: RestoreDryRun's max snapshot age: at most a week.
    snapshot_max_age_ms: int = bounded(
        600_000, maximum=7 * 86_400_000, unit="milliseconds", runbook=AT_MOST
    )
    #: The periodic snapshot interval: at most a day.
    snapshot_interval_ms: int = bounded(
        300_000, maximum=86_400_000, unit="milliseconds", runbook=AT_MOST
    )
    #: "456+ tests": at most ten million.
    min_build_tests: int = bounded(456, maximum=10_000_000, unit="tests", runbook=AT_LEAST)
    #: "All 6 crates pass": crates with a passing test in the build evidence, at most 1000.
    min_build_crates: int = bounded(6, maximum=1000, unit="crates", runbook=AT_LEAST)
    #: "Escalate persists > 5 min": at most a day.
    escalate_persist_min: float = bounded(5.0, maximum=1440, unit="minutes", runbook=AT_MOST)
    #: How stale a history's end may be and still reach "now": at most a day.
    coverage_lag_min: float = bounded(5.0, maximum=1440, unit="minutes", runbook=AT_MOST)
    #: "No regression in supervisor restart counts": how much faster than the baseline before
    #: the phase restarts may come, in percent (not a runbook number), plus one restart.
    restart_rate_tolerance_pct: float = bounded(25.0, maximum=1000, unit="percent")


@dataclass(frozen=True)
class Release:
    """What is being deployed (config ``[release]``): ``v5_version`` is the version the v5
    daemon must report (``daemon.info.version``); None: the version the build evidence names."""

    v5_version: str | None = None


@dataclass(frozen=True)
class AgtmuxSettings:
    """The agtmux runbook's windows, thresholds, expected sources and parity fields.

    ``expected_healthy_sources`` None (config ``"*"``) expects every source the daemon's
    ``list_source_health`` lists to be healthy."""

    expected_healthy_sources: tuple[str, ...] | None = DEFAULT_EXPECTED_HEALTHY
    pane_parity: ParityConfig = ParityConfig(DEFAULT_PANE_FIELDS, DEFAULT_PANE_IGNORE)
    session_parity: ParityConfig = ParityConfig(DEFAULT_SESSION_FIELDS, DEFAULT_SESSION_IGNORE)
    windows: Windows = Windows()
    thresholds: Thresholds = Thresholds()
    release: Release = Release()


def _release(reader: TableReader) -> Release:
    reader.reject_unknown(("v5_version",))
    if reader.table.get("v5_version") is None:
        return Release()
    version = reader.string("v5_version")
    if parse_version(version) is None:
        raise reader.error(
            "v5_version", version, "a version as daemon.info reports it, MAJOR.MINOR.PATCH"
        )
    return Release(version)


def _parity(reader: TableReader, fields: tuple[str, ...], ignore: tuple[str, ...]) -> ParityConfig:
    reader.reject_unknown(("fields", "ignore"))
    # An empty list would switch parity off: refused, like "*" for ignore.
    chosen = reader.strings("fields", fields, star="every field not ignored", empty=False)
    ignored = reader.strings("ignore", ignore, star=None) or ()
    overlap = sorted(set(chosen or ()) & set(ignored))
    if overlap:
        raise ConfigError(
            f"{reader.source}: [{reader.prefix}] lists {', '.join(overlap)} in both fields and "
            "ignore; a field is either compared or ignored"
        )
    return ParityConfig(chosen, ignored)


def parse_settings(top: TableReader) -> AgtmuxSettings:
    """Read the pack's tables from the whole config file ``top``."""
    sources = top.sub("sources")
    sources.reject_unknown(("expected_healthy",))
    parity = top.sub("parity")
    parity.reject_unknown(("panes", "sessions"))
    return AgtmuxSettings(
        # "*": every source the daemon lists; [] would expect none and is refused.
        expected_healthy_sources=sources.strings(
            "expected_healthy",
            DEFAULT_EXPECTED_HEALTHY,
            star="every source the daemon lists",
            empty=False,
        ),
        pane_parity=_parity(parity.sub("panes"), DEFAULT_PANE_FIELDS, DEFAULT_PANE_IGNORE),
        session_parity=_parity(
            parity.sub("sessions"), DEFAULT_SESSION_FIELDS, DEFAULT_SESSION_IGNORE
        ),
        windows=top.sub("windows").numbers(Windows),
        thresholds=top.sub("thresholds").numbers(Thresholds),
        release=_release(top.sub("release")),
    )


def history(settings: AgtmuxSettings) -> timedelta:
    """How far back history must reach: the longest window."""
    return settings.windows.longest()
