"""The operations contract (``docs/operations-contract.md``) as one client base class.

:class:`OpsProvider` implements every JSON kind of evidence on top of a single ``call(method,
params)``; the ``unix://`` provider answers it with JSON-RPC, the ``http(s)://`` one with a GET.
The helpers that turn a decoded JSON document into :class:`Evidence` are shared with the file
providers, which read the same documents from disk.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from collections.abc import Mapping
from datetime import datetime
from typing import TypeVar

from pytest_canarygate.agtmux.providers.base import AlertLedgerProvider
from pytest_canarygate.agtmux.providers.base import BindingStatsProvider
from pytest_canarygate.agtmux.providers.base import CursorStatsProvider
from pytest_canarygate.agtmux.providers.base import Evidence
from pytest_canarygate.agtmux.providers.base import RuntimeSelectorProvider
from pytest_canarygate.agtmux.providers.base import SnapshotProvider
from pytest_canarygate.agtmux.providers.base import Source
from pytest_canarygate.agtmux.providers.base import SupervisorProvider
from pytest_canarygate.agtmux.records import AlertEntry
from pytest_canarygate.agtmux.records import BindingStats
from pytest_canarygate.agtmux.records import CursorStats
from pytest_canarygate.agtmux.records import RecordError
from pytest_canarygate.agtmux.records import RuntimeSelector
from pytest_canarygate.agtmux.records import SnapshotMetadata
from pytest_canarygate.agtmux.records import SupervisorEvent
from pytest_canarygate.agtmux.records import SupervisorStatus
from pytest_canarygate.agtmux.records import check_distinct
from pytest_canarygate.agtmux.records import datetime_to_ms
from pytest_canarygate.agtmux.records import ms_to_datetime
from pytest_canarygate.agtmux.records import parse_alert_entry
from pytest_canarygate.agtmux.records import parse_binding_stats
from pytest_canarygate.agtmux.records import parse_cursor_stats
from pytest_canarygate.agtmux.records import parse_history
from pytest_canarygate.agtmux.records import parse_runtime_selector
from pytest_canarygate.agtmux.records import parse_snapshot_list
from pytest_canarygate.agtmux.records import parse_supervisor_event
from pytest_canarygate.agtmux.records import parse_supervisor_status
from pytest_canarygate.errors import ProtocolError

__all__ = [
    "ALERT_LEDGER",
    "BINDING_STATS",
    "CURSOR_STATS",
    "OPS_METHODS",
    "RUNTIME_SELECTOR",
    "SNAPSHOT_LIST",
    "SUPERVISOR_EVENTS",
    "SUPERVISOR_STATUS",
    "OpsProvider",
    "document_evidence",
    "history_evidence",
    "malformed",
]

R = TypeVar("R")

SNAPSHOT_LIST = "ops.snapshot_list"
SUPERVISOR_STATUS = "ops.supervisor_status"
SUPERVISOR_EVENTS = "ops.supervisor_events"
ALERT_LEDGER = "ops.alert_ledger"
CURSOR_STATS = "ops.cursor_stats"
BINDING_STATS = "ops.binding_stats"
RUNTIME_SELECTOR = "ops.runtime_selector"
OPS_METHODS = (
    SNAPSHOT_LIST,
    SUPERVISOR_STATUS,
    SUPERVISOR_EVENTS,
    ALERT_LEDGER,
    CURSOR_STATS,
    BINDING_STATS,
    RUNTIME_SELECTOR,
)

Params = Mapping[str, int]


def malformed(uri: str, method: str | None, where: str, exc: RecordError) -> ProtocolError:
    """A ProtocolError for a record that does not have its documented shape."""
    return ProtocolError(uri, method, f"{where}: {exc}" if where else str(exc))


def document_evidence(
    payload: object,
    source: Source,
    parse: Callable[[object, str], R],
    *,
    method: str | None,
    where: str = "result",
    key: str = "",
) -> Evidence[R]:
    """Validate a one-record JSON document; its ``covers_from_ms``/``as_of_ms``, when the record
    has them, become the evidence's coverage."""
    try:
        record = parse(payload, key)
    except RecordError as exc:
        raise malformed(source.uri, method, where, exc) from None
    covers_from = covers_to = None
    if isinstance(record, SupervisorStatus | CursorStats | BindingStats):
        covers_from = ms_to_datetime(record.covers_from_ms)
        covers_to = ms_to_datetime(record.as_of_ms)
    return Evidence((record,), source, payload, covers_from, covers_to)


def history_evidence(
    payload: object,
    source: Source,
    items_key: str,
    parse: Callable[[object, str], R],
    *,
    method: str | None,
    where: str = "result",
    identity: tuple[str, Callable[[R], str]] | None = None,
) -> Evidence[R]:
    """Validate ``{<items_key>: [...], covers_from_ms, as_of_ms}`` into covered evidence. With
    ``identity`` (what the identity is called, how to read it), two records with one identity
    contradict each other: malformed, naming the identity."""
    try:
        records, covers_from_ms, as_of_ms = parse_history(payload, items_key, parse)
        if identity is not None:
            check_distinct(records, identity[1], identity[0], key=items_key)
    except RecordError as exc:
        raise malformed(source.uri, method, where, exc) from None
    return Evidence(
        records, source, payload, ms_to_datetime(covers_from_ms), ms_to_datetime(as_of_ms)
    )


def _alert_id(entry: AlertEntry) -> str:
    return entry.alert_id


def _since(since: datetime | None) -> Params:
    return {} if since is None else {"since_ms": datetime_to_ms(since)}


class OpsProvider(
    SnapshotProvider,
    SupervisorProvider,
    AlertLedgerProvider,
    CursorStatsProvider,
    BindingStatsProvider,
    RuntimeSelectorProvider,
):
    """Every operations method, over whatever transport :meth:`call` speaks."""

    @abstractmethod
    def call(self, method: str, params: Params) -> tuple[object, Source]:
        """Ask for ``method``; return the result, decoded with
        :func:`pytest_canarygate.strictjson.loads` (no key twice in an object, no NaN or
        Infinity), and where it came from."""

    def snapshots(self) -> Evidence[SnapshotMetadata]:
        payload, source = self.call(SNAPSHOT_LIST, {})
        try:  # one snapshot_id twice contradicts itself: malformed, naming the id
            records = parse_snapshot_list(payload)
        except RecordError as exc:
            raise malformed(source.uri, SNAPSHOT_LIST, "result", exc) from None
        return Evidence(records, source, payload)

    def supervisor_status(self) -> Evidence[SupervisorStatus]:
        payload, source = self.call(SUPERVISOR_STATUS, {})
        return document_evidence(payload, source, parse_supervisor_status, method=SUPERVISOR_STATUS)

    def supervisor_events(self, since: datetime | None = None) -> Evidence[SupervisorEvent]:
        payload, source = self.call(SUPERVISOR_EVENTS, _since(since))
        return history_evidence(
            payload, source, "events", parse_supervisor_event, method=SUPERVISOR_EVENTS
        )

    def alert_entries(self, since: datetime | None = None) -> Evidence[AlertEntry]:
        # An answer lists each alert once, in its current state (unlike the ledger file, whose
        # later lines update earlier ones): one alert_id twice contradicts itself.
        payload, source = self.call(ALERT_LEDGER, _since(since))
        return history_evidence(
            payload,
            source,
            "entries",
            parse_alert_entry,
            method=ALERT_LEDGER,
            identity=("alert", _alert_id),
        )

    def cursor_stats(self) -> Evidence[CursorStats]:
        payload, source = self.call(CURSOR_STATS, {})
        return document_evidence(payload, source, parse_cursor_stats, method=CURSOR_STATS)

    def binding_stats(self) -> Evidence[BindingStats]:
        payload, source = self.call(BINDING_STATS, {})
        return document_evidence(payload, source, parse_binding_stats, method=BINDING_STATS)

    def runtime_selector(self) -> Evidence[RuntimeSelector]:
        payload, source = self.call(RUNTIME_SELECTOR, {})
        return document_evidence(payload, source, parse_runtime_selector, method=RUNTIME_SELECTOR)
