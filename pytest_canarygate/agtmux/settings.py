"""The agtmux pack's own config tables: ``[sources]``, ``[parity.*]``, ``[windows]`` and
``[thresholds]``, read into a frozen :class:`AgtmuxSettings` (``config.pack_settings``).

Every mistake raises a ConfigError naming the file and the key, like the engine's tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pytest_canarygate.config import TableReader
from pytest_canarygate.errors import ConfigError

#: The tables this module reads.
TABLES = ("sources", "parity", "windows", "thresholds")

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

    def compared(self, keys: set[str]) -> list[str]:
        """The fields to compare, given the union of keys seen on both sides."""
        chosen = keys if self.fields is None else set(self.fields)
        return sorted(chosen - set(self.ignore))


@dataclass(frozen=True)
class Windows:
    """Time windows of the runbook, in hours (config ``[windows]``)."""

    alpha_monitor_h: float = 24.0
    canary_duration_h: float = 48.0
    gradual_days: float = 7.0
    cutover_stable_days: float = 7.0
    escalate_days: float = 7.0
    archive_retention_days: float = 30.0

    def longest(self) -> timedelta:
        """The longest window, which bounds how much history is asked for."""
        hours = [self.alpha_monitor_h, self.canary_duration_h]
        days = [self.gradual_days * 2, self.cutover_stable_days, self.escalate_days]
        return max(timedelta(hours=max(hours)), timedelta(days=max(days)))


@dataclass(frozen=True)
class Thresholds:
    """Numbers the runbook and the daemon facts fix (config ``[thresholds]``)."""

    latency_p95_ms: int = 3000
    breach_windows: int = 3
    snapshot_max_age_ms: int = 600_000
    snapshot_interval_ms: int = 300_000
    min_build_tests: int = 456
    escalate_persist_min: float = 5.0
    coverage_lag_min: float = 5.0


@dataclass(frozen=True)
class AgtmuxSettings:
    """The agtmux runbook's windows, thresholds, expected sources and parity fields."""

    expected_healthy_sources: tuple[str, ...] = DEFAULT_EXPECTED_HEALTHY
    pane_parity: ParityConfig = ParityConfig(DEFAULT_PANE_FIELDS, DEFAULT_PANE_IGNORE)
    session_parity: ParityConfig = ParityConfig(DEFAULT_SESSION_FIELDS, DEFAULT_SESSION_IGNORE)
    windows: Windows = Windows()
    thresholds: Thresholds = Thresholds()


def _parity(reader: TableReader, fields: tuple[str, ...], ignore: tuple[str, ...]) -> ParityConfig:
    reader.reject_unknown(("fields", "ignore"))
    chosen = reader.strings("fields", fields)
    ignored = reader.strings("ignore", ignore) or ()
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
        expected_healthy_sources=sources.strings("expected_healthy", DEFAULT_EXPECTED_HEALTHY)
        or (),
        pane_parity=_parity(parity.sub("panes"), DEFAULT_PANE_FIELDS, DEFAULT_PANE_IGNORE),
        session_parity=_parity(
            parity.sub("sessions"), DEFAULT_SESSION_FIELDS, DEFAULT_SESSION_IGNORE
        ),
        windows=top.sub("windows").numbers(Windows),
        thresholds=top.sub("thresholds").numbers(Thresholds),
    )


def history(settings: AgtmuxSettings) -> timedelta:
    """How far back history must reach: the longest window."""
    return settings.windows.longest()
