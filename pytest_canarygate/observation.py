"""The observation: every daemon read once per run, frozen, and judged by every gate.

The controller reads each method the selected gates need, once per daemon (a method needing
``n`` readings is read ``n`` times spread over ``interval_s``), writes the result to the run's
``observation/observation.json.gz`` and hands the file to the xdist workers. Gates never talk to a
daemon themselves, so the number of calls does not grow with the number of gates or sessions.

A call that failed is kept with its error; a gate asking for it gets :class:`Unobservable`
naming the endpoint, the method and why.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import threading
import time
import weakref
import zlib
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any
from typing import ClassVar

from pytest_canarygate import clock
from pytest_canarygate.clock import refuse_future
from pytest_canarygate.clock import timestamps_in
from pytest_canarygate.errors import CanarygateError
from pytest_canarygate.errors import EndpointError
from pytest_canarygate.errors import EndpointTimeout
from pytest_canarygate.errors import EvidenceMissing
from pytest_canarygate.errors import NotServed
from pytest_canarygate.errors import ProtocolError
from pytest_canarygate.errors import RemoteError
from pytest_canarygate.errors import UntrustedEndpointError
from pytest_canarygate.pack import EvidenceAccessor
from pytest_canarygate.verdicts import Unobservable

SCHEMA = "canarygate/observation/v3"
#: Schemas :meth:`Observation.load` reads besides v3, as bundles archived before hold them: v2
#: (each answer as a compact, key-sorted ``result`` beside its ``response`` without it, which
#: is also how v3 writes a record that holds no reply text) and v1 (``observation.json``, each
#: answer twice: as ``result`` and inside ``response``).
_SCHEMA_V2 = "canarygate/observation/v2"
_SCHEMA_V1 = "canarygate/observation/v1"
#: The observation in a run folder: JSON, gzip-compressed without a name or a time in its
#: header, so the same records always make the same bytes. A call read live is written as the
#: daemon's reply text (kept until written, then dropped: it is as large as the answer); any
#: other record, or one written again, as its result in compact, key-sorted JSON.
OBSERVATION_FILE = Path("observation") / "observation.json.gz"
#: Where bundles written before v2 keep it (plain JSON, schema v1).
LEGACY_OBSERVATION_FILE = Path("observation") / "observation.json"
_COMPRESSLEVEL = 1

#: A file a pack's simulator leaves beside each socket. A run whose daemons carry it judged
#: the simulator, whatever the config says, and can never be signed as a live run.
SIMULATOR_MARKER = ".canarygate-simulator"
#: Error kinds that mean nothing at that endpoint can be read at all.
_UNREACHABLE = ("transport", "timeout", "untrusted")


def utc_now() -> str:
    """The current UTC time as RFC 3339 with milliseconds and ``Z``."""
    return clock.wall_now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class CallRecord:
    """One method call on one daemon as observed: its result or its error."""

    daemon: str
    endpoint: str
    method: str
    reading: int
    params: dict[str, Any] | None
    started_at: str
    elapsed_ms: float
    result: Any = None
    error: str | None = None
    error_kind: str | None = None
    response: dict[str, Any] | None = None
    #: The pid of the process that served the socket (SO_PEERCRED), where the kernel says.
    peer_pid: int | None = None

    @property
    def ok(self) -> bool:
        """True when the daemon answered with a result."""
        return self.error is None

    @functools.cached_property
    def result_bytes(self) -> int:
        """The size of the result as compact, key-sorted JSON; known without encoding again
        once a record without its reply text was written."""
        return len(_dump(self.result))

    @property
    def reply_bytes(self) -> int | None:
        """The size of the daemon's whole reply as it came, where the observation holds that
        text (a call read live, or read back from a v3 file); else None."""
        size: int | None = self.__dict__.get(_REPLY_SIZE)
        return size

    def to_json(self) -> dict[str, Any]:
        """The record as written (schema v2): ``response`` without its ``result`` member, which
        is the record's own ``result`` (put back on load). Values are shared, not copied."""
        response = self.response
        if response is not None and "result" in response:
            response = {k: v for k, v in response.items() if k != "result"}
        return {
            "daemon": self.daemon,
            "endpoint": self.endpoint,
            "method": self.method,
            "reading": self.reading,
            "params": self.params,
            "started_at": self.started_at,
            "elapsed_ms": self.elapsed_ms,
            "result": self.result,
            "error": self.error,
            "error_kind": self.error_kind,
            "response": response,
            "peer_pid": self.peer_pid,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, response_has_result: bool) -> CallRecord:
        """A record as read back; with ``response_has_result`` (schema v1) the response is
        kept as written; one holding the daemon's ``reply`` (v3) takes its result from it;
        else the record's result is put back into its response."""
        if "reply" in data:
            fields = dict(data)
            reply, size = fields.pop("reply"), fields.pop("reply_bytes", None)
            if not isinstance(reply, dict) or type(size) is not int:
                raise ValueError("a call's reply is not a JSON-RPC object with its size")
            record = cls(**fields, result=reply.get("result"), response=reply)
            record.__dict__[_REPLY_SIZE] = size
            return record
        response = data.get("response")
        if not response_has_result and response is not None and data.get("error") is None:
            response = {**response, "result": data.get("result")}
        return cls(**{**data, "response": response})


@dataclass(frozen=True)
class EvidenceReading:
    """One provider read: its typed evidence (encoded) or its error."""

    accessor: str
    kind: str
    uri: str | None
    started_at: str
    elapsed_ms: float
    evidence: Any = None
    error: str | None = None
    error_kind: str | None = None

    @property
    def ok(self) -> bool:
        """True when the provider answered."""
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """The reading as written (values shared, not copied)."""
        return {
            "accessor": self.accessor,
            "kind": self.kind,
            "uri": self.uri,
            "started_at": self.started_at,
            "elapsed_ms": self.elapsed_ms,
            "evidence": self.evidence,
            "error": self.error,
            "error_kind": self.error_kind,
        }


EVIDENCE_NEED = "evidence"

ProviderMaker = Callable[[str, str], Any]


def read_evidence(
    name: str,
    accessor: EvidenceAccessor,
    uri: str | None,
    make: ProviderMaker,
    since: datetime,
    config_where: str,
    encode: Callable[[Any], Any],
) -> EvidenceReading:
    """Ask one provider for one accessor; errors are kept, never raised."""
    kind, ask = accessor.kind, accessor.read
    started, t0 = utc_now(), time.perf_counter()

    def failed(message: str, error_kind: str) -> EvidenceReading:
        elapsed = round((time.perf_counter() - t0) * 1000, 3)
        return EvidenceReading(name, kind, uri, started, elapsed, None, message, error_kind)

    if uri is None:
        return failed(
            f"no provider configured for {kind!r} evidence: set [evidence] {kind} = "
            f"'file:///...' (or http:// or unix://) in {config_where}",
            "not-configured",
        )
    try:
        with make(kind, uri) as provider:
            evidence = ask(provider, since)
    except EndpointError as exc:
        return failed(str(exc), _error_kind(exc))
    except CanarygateError as exc:  # a ConfigError from a provider factory
        return failed(f"{uri}: {exc}", "config")
    except Exception as exc:  # a provider bug or an answer it could not handle: never a pass
        return failed(
            f"{uri}: the {kind} provider failed: {type(exc).__name__}: {exc}", "provider-error"
        )
    elapsed = round((time.perf_counter() - t0) * 1000, 3)
    return EvidenceReading(name, kind, uri, started, elapsed, encode(evidence))


@dataclass
class DaemonObservation:
    """Every call made to one daemon, in order."""

    name: str
    endpoint: str
    calls: list[CallRecord] = field(default_factory=list)
    _by_method: dict[str, list[CallRecord]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _indexed: tuple[int, int] = field(default=(0, -1), init=False, repr=False, compare=False)

    def readings(self, method: str) -> list[CallRecord]:
        """All readings of ``method``, oldest first."""
        if self._indexed != (id(self.calls), len(self.calls)):
            # every gate asks; the calls are only ever appended to (while observing)
            index: dict[str, list[CallRecord]] = {}
            for call in self.calls:
                index.setdefault(call.method, []).append(call)
            self._by_method, self._indexed = index, (id(self.calls), len(self.calls))
        return list(self._by_method.get(method, ()))


@dataclass
class Observation:
    """The frozen view of the live system that all gates of a run judge."""

    phase: str
    target: dict[str, Any]
    started_at: str
    finished_at: str
    daemons: dict[str, DaemonObservation]
    evidence: dict[str, EvidenceReading] = field(default_factory=dict)
    #: How far past ``now`` a timestamp may lie (``[observation] clock_skew_s``).
    clock_skew_s: float = 30.0
    #: ``[[targets]]`` runs: per target, ``daemons`` (plain name to the key in ``daemons``,
    #: ``"<target>/<name>"``), ``forwarded`` (plain name to the ssh child's pid and the remote
    #: uid) and ``simulated`` (daemons whose remote folder holds the simulator's marker).
    #: Empty for a run without targets.
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def target_names(self) -> list[str]:
        """The configured targets, in config order (empty: one implicit target)."""
        return list(self.targets)

    def for_target(self, name: str) -> Observation:
        """Target ``name``'s view: its daemons under their plain names, the fleet-wide
        evidence and clock; what a gate of that target judges."""
        cache: dict[str, Observation] = self.__dict__.setdefault("_target_views", {})
        if name not in cache:
            keys = self.targets[name]["daemons"]
            daemons = {
                plain: DaemonObservation(plain, self.daemons[key].endpoint, self.daemons[key].calls)
                for plain, key in keys.items()
                if key in self.daemons
            }
            cache[name] = Observation(
                self.phase,
                self.target,
                self.started_at,
                self.finished_at,
                daemons,
                self.evidence,
                self.clock_skew_s,
            )
        return cache[name]

    def first_round(self) -> Observation:
        """The same observation with each daemon's first readings only (every method read
        once) and no provider evidence (read after them): what a serial run knows while its
        later readings are still being taken."""
        calls = (c for d in self.daemons.values() for c in d.calls)
        if not self.evidence and all(c.reading == 1 for c in calls):
            return self
        cached = self.__dict__.get("_first_round")
        if cached is None:
            daemons = {
                name: DaemonObservation(name, d.endpoint, [c for c in d.calls if c.reading == 1])
                for name, d in self.daemons.items()
            }
            cached = self.__dict__["_first_round"] = Observation(
                self.phase,
                self.target,
                self.started_at,
                self.finished_at,
                daemons,
                {},
                self.clock_skew_s,
                self.targets,
            )
        return cached

    @property
    def now(self) -> datetime:
        """The run's one clock: when the observation started. Every gate judges at it."""
        # parsed once per start time: every gate of the run asks, many times
        cached = self.__dict__.get("_now")
        if cached is None or cached[0] != self.started_at:
            parsed = datetime.fromisoformat(self.started_at.replace("Z", "+00:00"))
            cached = (self.started_at, parsed)
            self.__dict__["_now"] = cached
        return cached[1]

    @property
    def latest_allowed(self) -> datetime:
        """The latest timestamp evidence may carry: ``now`` plus the configured skew."""
        return self.now + timedelta(seconds=self.clock_skew_s)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the on-disk form); it shares the answers, it does not copy them."""
        return {
            "schema": SCHEMA,
            "phase": self.phase,
            "target": self.target,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "clock_skew_s": self.clock_skew_s,
            "daemons": {
                name: {"endpoint": d.endpoint, "calls": [c.to_json() for c in d.calls]}
                for name, d in self.daemons.items()
            },
            "evidence": {name: r.to_json() for name, r in self.evidence.items()},
            **({"targets": self.targets} if self.targets else {}),
        }

    def write(self, run_dir: Path) -> Path:
        """Write to ``run_dir/observation/observation.json.gz`` (temporary file, then rename)
        and return the path. Streamed: one record is encoded at a time."""
        path = run_dir / OBSERVATION_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, compresslevel=_COMPRESSLEVEL, mtime=0
            ) as out,
        ):
            for chunk in self._encode():
                out.write(chunk.encode("utf-8"))
        os.replace(tmp, path)
        return path

    def _encode(self) -> Iterable[str]:
        """The compact, key-sorted JSON text of :meth:`to_json`, piece by piece."""
        head = {
            "clock_skew_s": self.clock_skew_s,
            "finished_at": self.finished_at,
            "phase": self.phase,
            "schema": SCHEMA,
            "started_at": self.started_at,
            "target": self.target,
        }
        if self.targets:
            head["targets"] = self.targets
        # An answer shared by two readings (the daemon answered the same text) is encoded once.
        results: dict[int, str] = {}
        yield '{"daemons":{'
        for i, name in enumerate(sorted(self.daemons)):
            daemon = self.daemons[name]
            yield f'{"," if i else ""}{_dump(name)}:{{"calls":['
            for j, call in enumerate(daemon.calls):
                yield ("," if j else "") + _dump_call(call, results)
            yield f'],"endpoint":{_dump(daemon.endpoint)}}}'
        yield '},"evidence":{'
        for i, name in enumerate(sorted(self.evidence)):
            yield f"{',' if i else ''}{_dump(name)}:{_dump(self.evidence[name].to_json())}"
        yield "}," + _dump(head)[1:] + "\n"

    @classmethod
    def load(cls, path: Path) -> Observation:
        """Read an observation written by :meth:`write` (``.json.gz``, schema v3 or v2), or
        by an earlier version (plain ``.json``, schema v1)."""
        try:
            data = _read_json(path)
        except (OSError, EOFError, zlib.error, ValueError, RecursionError) as exc:
            raise ValueError(f"{path}: not a readable observation ({exc})") from None
        if not isinstance(data, dict) or data.get("schema") not in (
            SCHEMA,
            _SCHEMA_V2,
            _SCHEMA_V1,
        ):
            raise ValueError(f"{path}: not a {SCHEMA} file")
        v1 = data["schema"] == _SCHEMA_V1
        daemons = {
            name: DaemonObservation(
                name,
                d["endpoint"],
                [CallRecord.from_json(c, response_has_result=v1) for c in d["calls"]],
            )
            for name, d in data["daemons"].items()
        }
        evidence = {
            name: EvidenceReading(**reading) for name, reading in data.get("evidence", {}).items()
        }
        return cls(
            data["phase"],
            data["target"],
            data["started_at"],
            data["finished_at"],
            daemons,
            evidence,
            float(data.get("clock_skew_s", 30.0)),
            dict(data.get("targets", {})),
        )

    @classmethod
    def load_run(cls, run_dir: Path) -> Observation:
        """The observation of a run folder or bundle, in whichever format it was written."""
        return cls.load(observation_path(run_dir))

    def peers(self, reported_pid: Callable[[Any], int | None]) -> list[dict[str, Any]]:
        """Per daemon: the pids the kernel says served its socket, beside the pid the daemon
        reports in its first answer (``reported_pid`` reads it); ``relayed`` when they differ,
        i.e. a relay or proxy answered in front of the daemon.

        A daemon of a target reached over ssh is served locally by our own ssh child
        (``forwarded_by``): there ``relayed`` means any other process served its socket."""
        forwarded = {
            f"{target}/{plain}": via
            for target, info in self.targets.items()
            for plain, via in info.get("forwarded", {}).items()
        }
        found = []
        for key, daemon in self.daemons.items():
            served = sorted({c.peer_pid for c in daemon.calls if c.peer_pid is not None})
            first = next((c for c in daemon.calls if c.ok), None)
            reported = reported_pid(first.result) if first is not None else None
            via = forwarded.get(key)
            if via is not None:
                relayed = any(p != via["ssh_pid"] for p in served)
            else:
                relayed = reported is not None and any(p != reported for p in served)
            peer: dict[str, Any] = {
                "daemon": key,
                "endpoint": daemon.endpoint,
                "peer_pids": served,
                "reported_pid": reported,
                "relayed": relayed,
            }
            if via is not None:
                peer["forwarded_by"] = {"ssh_pid": via["ssh_pid"], "remote_uid": via["remote_uid"]}
            found.append(peer)
        return found

    def problems(self) -> list[str]:
        """What could not be read, once per cause: a daemon that is down or untrusted is one
        line, not one per method; then each failed method and each unavailable evidence kind."""
        lines: list[str] = []
        down: set[str] = set()
        for daemon in self.daemons.values():
            failed = [c for c in daemon.calls if not c.ok]
            if failed and failed[0] is daemon.calls[0]:
                lines.append(f"{daemon.name}: {failed[0].error}")
                if failed[0].error_kind in _UNREACHABLE:
                    down.add(daemon.endpoint)
                continue
            lines += [f"{daemon.name}: {c.error}" for c in failed]
        lines += [
            f"{r.kind} evidence: {r.error}"
            for r in self.evidence.values()
            if not r.ok and not (r.uri in down and r.error_kind in _UNREACHABLE)
        ]
        return list(dict.fromkeys(lines))


def _read_json(path: Path) -> Any:
    """The JSON document in ``path`` (gzip-compressed if its name ends ``.gz``), decoded as
    :func:`json.loads` decodes bytes; each stage's copy is dropped before the next is made."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    text = data.decode(json.detect_encoding(data), "surrogatepass")
    del data
    return json.loads(text)


def observation_path(run_dir: Path) -> Path:
    """The observation file of a run folder or bundle: ``observation.json.gz``, or the plain
    ``observation.json`` of a bundle written before it (when only that one exists)."""
    current = run_dir / OBSERVATION_FILE
    legacy = run_dir / LEGACY_OBSERVATION_FILE
    return legacy if not current.exists() and legacy.exists() else current


_ENCODER = json.JSONEncoder(
    separators=(",", ":"), sort_keys=True, ensure_ascii=True, allow_nan=False
)


def _dump(value: Any) -> str:
    # one-shot encode: the C encoder (JSONEncoder.iterencode would use the pure-Python one)
    return _ENCODER.encode(value)


#: Where a record read live keeps the daemon's reply text until the observation is written,
#: and the size of that text (kept: the file holds it as ``reply_bytes``).
_REPLY = "_reply_text"
_REPLY_SIZE = "_reply_bytes"


def keep_reply(call: CallRecord, raw_reply: str) -> None:
    """Keep the daemon's reply to ``call`` as it came (its trailing newline left out): the
    observation file holds that text, not the answer encoded again. It was decoded strictly
    (:mod:`pytest_canarygate.strictjson`), so any JSON reader finds in it what the gates
    judged."""
    text = raw_reply[:-1] if raw_reply.endswith("\n") else raw_reply
    call.__dict__[_REPLY] = text
    call.__dict__[_REPLY_SIZE] = len(text) if text.isascii() else len(text.encode("utf-8"))


def _dump_call(call: CallRecord, results: dict[int, str]) -> str:
    """``_dump(call.to_json())``; with the daemon's reply kept (:func:`keep_reply`), that text
    as ``reply`` and its size as ``reply_bytes`` instead of ``result`` and ``response``. Else
    the result's text is taken from ``results`` (by identity) when an earlier record shares
    it, else encoded and added there."""
    fields = call.to_json()
    reply = call.__dict__.pop(_REPLY, None)  # not kept past writing: it is as large as the answer
    if reply is not None:
        del fields["result"], fields["response"]
        texts = {key: _dump(value) for key, value in fields.items()}
        texts.update(reply=reply, reply_bytes=str(call.reply_bytes))
        return "{" + ",".join(f"{_dump(key)}:{texts[key]}" for key in sorted(texts)) + "}"
    result = call.result
    text = results.get(id(result))
    if text is None:
        text = results[id(result)] = _dump(result)
    call.__dict__["result_bytes"] = len(text)  # primes the cached property
    parts = [
        f"{_dump(key)}:{text if key == 'result' else _dump(value)}"
        for key, value in sorted(fields.items())
    ]
    return "{" + ",".join(parts) + "}"


def simulated_endpoints(endpoints: Mapping[str, str]) -> list[str]:
    """The daemons whose socket folder carries the simulator's marker."""
    from pytest_canarygate.endpoints import parse_endpoint

    marked = []
    for name, uri in endpoints.items():
        endpoint = parse_endpoint(uri)
        if endpoint.scheme == "unix" and (Path(endpoint.path).parent / SIMULATOR_MARKER).exists():
            marked.append(name)
    return marked


def _error_kind(exc: EndpointError) -> str:
    for kind, cls in (
        ("not-served", NotServed),
        ("missing", EvidenceMissing),
        ("untrusted", UntrustedEndpointError),
        ("timeout", EndpointTimeout),
        ("remote", RemoteError),
        ("protocol", ProtocolError),
    ):
        if isinstance(exc, cls):
            return kind
    return "transport"


Progress = Callable[[str], None]


def _identity(value: Any) -> Any:
    return value


def _observe_daemon(
    name: str,
    endpoint: str,
    methods: Mapping[str, int],
    *,
    method_params: Mapping[str, Mapping[str, Any]],
    bracket_method: str | None,
    connect_timeout: float,
    read_timeout: float,
    interval_s: float,
    connect_to: Any = None,
    refused: EndpointError | None = None,
    first_round_done: Callable[[], None] | None = None,
    into: dict[str, DaemonObservation] | None = None,
) -> DaemonObservation:
    """Read one daemon: every method once, those read twice again ``interval_s`` after their
    own first reading. ``first_round_done`` is called once the first readings are taken (or
    the daemon turned out unreachable), whatever happens; ``into[name]`` holds the daemon's
    observation from the start, its calls appended as they are made."""
    done = first_round_done or _nothing
    try:
        from pytest_canarygate.rpc import RpcClient

        observed = DaemonObservation(name, endpoint)
        if into is not None:
            into[name] = observed
        client = (
            RpcClient(
                connect_to if connect_to is not None else endpoint,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
            )
            if refused is None
            else None
        )

        # The last exchange of each method read again later: an answer that comes back as the same
        # text is not decoded again (a separate reading all the same, with its own time).
        previous: dict[str, Any] = {}

        # When each method's latest reading started: its next one starts ``interval_s`` later.
        last_started: dict[str, float] = {}

        def call(method: str, reading: int) -> None:
            params = _params(method_params, method)
            last_started[method] = time.monotonic()
            started, t0 = utc_now(), time.perf_counter()
            outcome: dict[str, Any]
            try:
                if client is None:  # refused before any call (ssh, the remote trust check)
                    assert refused is not None
                    raise refused
                exchange = client.exchange(method, params, like=previous.pop(method, None))
                if reading < readings.get(method, 1):
                    previous[method] = exchange
                outcome = {
                    "result": exchange.response.get("result"),
                    "response": exchange.response,
                    "peer_pid": exchange.peer_pid,
                }
            except EndpointError as exc:
                outcome = {"error": str(exc), "error_kind": _error_kind(exc)}
            elapsed_ms = round((time.perf_counter() - t0) * 1000, 3)
            record = CallRecord(
                name, endpoint, method, reading, params, started, elapsed_ms, **outcome
            )
            if "response" in outcome:
                keep_reply(record, exchange.raw_reply)
            observed.calls.append(record)

        plan = dict(methods)
        if bracket_method is not None:
            plan.pop(bracket_method, None)  # the bracket's two readings serve those needs
        elif not plan:
            return observed
        readings = {**plan, **({bracket_method: 2} if bracket_method is not None else {})}
        # The first call tells whether the daemon answers at all: the bracket, else the first need.
        first = bracket_method if bracket_method is not None else next(iter(plan))
        call(first, 1)
        if observed.calls[-1].error_kind in _UNREACHABLE:
            # Down, hung or untrusted: every other call would fail the same way, one timeout each.
            for method in (m for m in plan if m != first):
                observed.calls.append(
                    CallRecord(
                        name,
                        endpoint,
                        method,
                        1,
                        _params(method_params, method),
                        utc_now(),
                        0.0,
                        error=observed.calls[0].error,
                        error_kind=observed.calls[0].error_kind,
                    )
                )
            return observed
        for method in plan:
            if method != first:
                call(method, 1)
        done()
        repeats = [m for m, n in plan.items() if n > 1]
        for reading in range(2, max(plan.values(), default=1) + 1):
            for method in repeats:
                if plan[method] >= reading:
                    # ``interval_s`` from the start of this method's previous reading: the time
                    # the readings in between took counts towards the pause, never less.
                    time.sleep(max(0.0, last_started[method] + interval_s - time.monotonic()))
                    call(method, reading)
        if bracket_method is not None:
            call(bracket_method, 2)
        return observed
    finally:
        done()


def _nothing() -> None:
    pass


def _params(method_params: Mapping[str, Mapping[str, Any]], method: str) -> dict[str, Any] | None:
    params = method_params.get(method)
    return dict(params) if params is not None else None


def observe(
    endpoints: Mapping[str, str],
    plan: Mapping[str, Mapping[str, int]],
    *,
    progress: Progress | None = None,
    **options: Any,
) -> Observation:
    """Read every daemon in ``plan`` (``{daemon: {method: readings}}``) and every provider
    accessor in ``evidence_plan`` (``{name: (accessor, uri or None)}``), all concurrently.

    With ``targets`` (``{target: {daemon: endpoint}}``, ``endpoints`` then unused) each
    target's daemons are read instead, kept as ``"<target>/<daemon>"``, ``ssh://`` endpoints
    through :mod:`pytest_canarygate.ssh_forward` (``ssh``: the config's ``SshConfig``);
    at most :data:`MAX_WORKERS` targets and evidence kinds at once.

    ``bracket_method`` is read first and last on every daemon; ``method_params`` are the
    params sent with each method; ``encode`` makes provider evidence JSON-ready. The other
    options are :class:`Observing`'s."""
    observation = Observing(endpoints, plan, **options).run()
    if progress:
        report_progress(observation, progress)
    return observation


def start_observing(
    endpoints: Mapping[str, str], plan: Mapping[str, Mapping[str, int]], **options: Any
) -> Observing:
    """:func:`observe` in a thread of its own: the caller goes on while the daemons are read
    and waits for the first readings (:meth:`Observing.first_readings`) or the whole
    observation (:meth:`Observing.result`) when it needs them."""
    observing = Observing(endpoints, plan, **options)
    observing.start()
    return observing


def report_progress(observation: Observation, progress: Progress) -> None:
    """One line per daemon observed (calls, time answering, what failed), one for the
    provider evidence."""
    for key, daemon in observation.daemons.items():
        failed = [c for c in daemon.calls if not c.ok]
        state = "ok" if not failed else f"{len(failed)} failed: {failed[0].error}"
        busy_s = sum(c.elapsed_ms for c in daemon.calls) / 1000
        progress(
            f"observed {key} at {daemon.endpoint}: {len(daemon.calls)} calls "
            f"({busy_s:.1f} s answering), {state}"
        )
    if observation.evidence:
        missing = [r for r in observation.evidence.values() if not r.ok]
        state = "ok" if not missing else f"{len(missing)} unavailable ({missing[0].error})"
        progress(f"read {len(observation.evidence)} kinds of operations evidence: {state}")


class Observing:
    """One observation being taken (see :func:`observe` for what is read, and how)."""

    def __init__(
        self,
        endpoints: Mapping[str, str],
        plan: Mapping[str, Mapping[str, int]],
        *,
        phase: str,
        target: dict[str, Any],
        connect_timeout: float,
        read_timeout: float,
        interval_s: float,
        method_params: Mapping[str, Mapping[str, Any]] | None = None,
        bracket_method: str | None = None,
        evidence_plan: Mapping[str, tuple[EvidenceAccessor, str | None]] | None = None,
        make_provider: ProviderMaker | None = None,
        encode: Callable[[Any], Any] = _identity,
        clock_skew_s: float = 30.0,
        since: datetime | None = None,
        config_where: str = "the config",
        targets: Mapping[str, Mapping[str, str]] | None = None,
        ssh: Any = None,
    ) -> None:
        self.phase, self.target, self.clock_skew_s = phase, target, clock_skew_s
        self._plan = plan
        self._endpoints = endpoints
        self._targets = targets
        self._ssh = ssh
        self._evidence_plan = evidence_plan or {}
        self._provider_args = (
            make_provider or _no_maker,
            since or clock.wall_now(),
            config_where,
            encode,
        )
        self._read_timeout = read_timeout
        self._daemon_args: dict[str, Any] = {
            "method_params": method_params or {},
            "bracket_method": bracket_method,
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "interval_s": interval_s,
        }
        self._names = [n for n in plan if n in endpoints] if targets is None else []
        # Each daemon (not of a target) as its calls come in; set once all first rounds are.
        self._live: dict[str, DaemonObservation] = {}
        self._first_rounds = _Countdown(len(self._names))
        self._thread: threading.Thread | None = None
        self._outcome: Observation | BaseException | None = None
        self.started_at = utc_now()

    def start(self) -> None:
        """Take the observation in a thread of its own."""
        self._thread = threading.Thread(target=self._run_kept, name="canarygate-observe")
        self._thread.start()

    def _run_kept(self) -> None:
        try:
            self._outcome = self.run()
        except BaseException as exc:  # handed to the thread that asks for the result
            self._outcome = exc
        finally:
            self._first_rounds.release()  # whatever happened, nobody waits for it any longer

    def result(self) -> Observation:
        """The observation, once taken (what taking it raised, raised here)."""
        assert self._thread is not None, "result() of an observation never started"
        self._thread.join()
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome.with_traceback(outcome.__traceback__)
        assert outcome is not None
        return outcome

    def first_readings(self) -> Observation:
        """What the first round of readings found (every method of every daemon read once),
        as soon as it is in, while the later readings wait their interval: the same records
        the whole observation will hold, no evidence, and no targets (a run with targets is
        not split)."""
        assert not self._targets, "a run with targets waits for the whole observation"
        self._first_rounds.wait(None)
        if isinstance(self._outcome, BaseException) or set(self._live) != set(self._names):
            self.result()  # a daemon's reading never began: raises what stopped it
        so_far = {
            name: DaemonObservation(name, d.endpoint, list(d.calls))
            for name, d in self._live.items()
        }
        return Observation(
            self.phase, self.target, self.started_at, utc_now(), so_far, {}, self.clock_skew_s
        ).first_round()

    def run(self) -> Observation:
        """Read everything, in this thread (the daemons and providers in a pool)."""
        names, targets = self._names, self._targets
        jobs = len(names) + len(targets or {})
        workers = max(1, min(MAX_WORKERS, jobs + len(self._evidence_plan)))
        from pytest_canarygate.ssh_forward import Forwards

        forwards = Forwards()
        pool = ThreadPoolExecutor(max_workers=workers)
        first_rounds = self._first_rounds
        try:
            # Provider reads start once every daemon's first readings are taken (in the pause
            # before the next ones), so that decoding a large answer does not wait on them,
            # nor they on it.
            futures = {}
            for name in names:
                done = first_rounds.one()
                futures[name] = pool.submit(
                    _observe_daemon,
                    name,
                    self._endpoints[name],
                    self._plan[name],
                    **self._daemon_args,
                    first_round_done=done,
                    into=self._live,
                )
                # however the reading ends (never begun, even), nobody waits on it any longer
                futures[name].add_done_callback(_calling(done))
            target_futures = {
                tname: pool.submit(
                    _observe_target,
                    tname,
                    tendpoints,
                    self._plan,
                    self._daemon_args,
                    self._ssh,
                    forwards,
                )
                for tname, tendpoints in (targets or {}).items()
            }
            reads = {
                name: pool.submit(
                    _after,
                    first_rounds,
                    self._read_timeout,
                    read_evidence,
                    name,
                    accessor,
                    uri,
                    *self._provider_args,
                )
                for name, (accessor, uri) in self._evidence_plan.items()
            }
            daemons = {name: future.result() for name, future in futures.items()}
            target_info: dict[str, dict[str, Any]] = {}
            for tname, tfuture in target_futures.items():
                observed, info = tfuture.result()
                daemons.update({f"{tname}/{plain}": d for plain, d in observed.items()})
                target_info[tname] = info
            evidence = {accessor: future.result() for accessor, future in reads.items()}
        except BaseException:
            # Ctrl-C or a bug: stop every ssh child now, so no thread waits on a dead forward.
            forwards.close_all()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
            forwards.close_all()
        return Observation(
            self.phase,
            self.target,
            self.started_at,
            utc_now(),
            daemons,
            evidence,
            self.clock_skew_s,
            target_info,
        )


#: Targets, daemons and evidence kinds observed at once, at most.
MAX_WORKERS = 8


class _Countdown:
    """Set once each of ``count`` parts said it is done (each part once), or at once for 0."""

    def __init__(self, count: int) -> None:
        self._left = count
        self._lock = threading.Lock()
        self._event = threading.Event()
        if count <= 0:
            self._event.set()

    def one(self) -> Callable[[], None]:
        """What one part calls when done; calling it again does nothing."""
        said: list[bool] = []

        def done() -> None:
            with self._lock:
                if said:
                    return
                said.append(True)
                self._left -= 1
                if self._left <= 0:
                    self._event.set()

        return done

    def release(self) -> None:
        """Done, whatever the parts said."""
        self._event.set()

    def wait(self, timeout: float | None) -> bool:
        """Wait until every part is done, at most ``timeout`` seconds (None: for as long)."""
        return self._event.wait(timeout)


def _calling(done: Callable[[], None]) -> Callable[[Any], None]:
    """A future's done-callback that calls ``done()``."""
    return lambda _future: done()


def _after(countdown: _Countdown, timeout: float, work: Callable[..., Any], *args: Any) -> Any:
    """``work(*args)`` once ``countdown`` is done, or after ``timeout`` seconds at the latest."""
    countdown.wait(timeout)
    return work(*args)


def _observe_target(
    tname: str,
    endpoints: Mapping[str, str],
    plan: Mapping[str, Mapping[str, int]],
    daemon_args: Mapping[str, Any],
    ssh: Any,
    forwards: Any,
) -> tuple[dict[str, DaemonObservation], dict[str, Any]]:
    """Observe one target's daemons: ``ssh://`` ones checked on their host and forwarded (one
    ssh per host), all read concurrently; every error names the target."""
    from pytest_canarygate.config import SshConfig
    from pytest_canarygate.endpoints import Endpoint
    from pytest_canarygate.endpoints import parse_endpoint
    from pytest_canarygate.ssh_forward import Forward
    from pytest_canarygate.ssh_forward import check_remote

    ssh = ssh if ssh is not None else SshConfig()
    names = [n for n in plan if n in endpoints]
    parsed = {name: parse_endpoint(endpoints[name]) for name in names}
    info: dict[str, Any] = {
        "daemons": {name: f"{tname}/{name}" for name in endpoints},
        "forwarded": {},
        "simulated": [],
    }
    connect_to: dict[str, Any] = {}
    refused: dict[str, EndpointError] = {}
    hosts: dict[tuple[str | None, str, int | None], dict[str, Endpoint]] = {}
    for name, ep in parsed.items():
        if ep.scheme == "ssh":
            hosts.setdefault((ep.user, ep.host, ep.port), {})[name] = ep
    timeouts = {
        "connect_timeout": daemon_args["connect_timeout"],
        "read_timeout": daemon_args["read_timeout"],
    }
    opened: list[Forward] = []
    try:
        for group in hosts.values():
            destination = next(iter(group.values()))
            checked = check_remote(destination, group, ssh, **timeouts)
            refused.update(checked.errors)
            info["simulated"] += sorted(checked.simulated)
            trusted = {name: ep.path for name, ep in group.items() if name not in checked.errors}
            if not trusted:
                continue
            forward = forwards.add(
                Forward(destination, trusted, ssh, connect_timeout=timeouts["connect_timeout"])
            )
            opened.append(forward)
            try:
                local = forward.open()
            except EndpointError as exc:
                for name in trusted:
                    refused[name] = type(exc)(group[name].uri, None, exc.reason)
                continue
            for name, path in local.items():
                # Messages name the configured ssh:// endpoint; the client connects locally.
                connect_to[name] = Endpoint("unix", path, group[name].uri)
                info["forwarded"][name] = {
                    "ssh_pid": forward.pid,
                    "remote_uid": checked.remote_uid,
                }
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            futures = {
                name: pool.submit(
                    _observe_daemon,
                    name,
                    endpoints[name],
                    plan[name],
                    **daemon_args,
                    connect_to=connect_to.get(name),
                    refused=refused.get(name),
                )
                for name in names
            }
            observed = {name: future.result() for name, future in futures.items()}
    finally:
        for forward in opened:
            forward.close()
    for daemon in observed.values():
        daemon.calls = [
            replace(c, error=f"target {tname}: {c.error}") if c.error is not None else c
            for c in daemon.calls
        ]
    return observed, info


def _no_maker(kind: str, uri: str) -> Any:
    raise CanarygateError(f"no provider factory given for {kind} at {uri}")


class GateEvidence:
    """What one gate read and computed; the plugin attaches it to the gate's Allure result."""

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []
        self.readings: list[EvidenceReading] = []
        self.notes: list[tuple[str, Any]] = []

    def record(self, call: CallRecord) -> None:
        """Keep a daemon answer the gate read."""
        # by identity: comparing records would compare their (possibly huge) answers
        if not any(kept is call for kept in self.calls):
            self.calls.append(call)

    def record_reading(self, reading: EvidenceReading) -> None:
        """Keep a provider reading the gate read."""
        if not any(kept is reading for kept in self.readings):
            self.readings.append(reading)


class CurrentGateEvidence(GateEvidence):
    """The evidence log of whichever gate runs now in this process, for views shared by all
    gates of a run (one view, not one per gate). :meth:`switch` hands it the next gate's log;
    between gates it records into a log nobody reads."""

    def __init__(self) -> None:
        self._current = GateEvidence()

    def switch(self, log: GateEvidence | None) -> None:
        """Record into ``log`` from now on (a fresh, unread log when None)."""
        self._current = log if log is not None else GateEvidence()

    @property
    def calls(self) -> list[CallRecord]:  # type: ignore[override]
        return self._current.calls

    @property
    def readings(self) -> list[EvidenceReading]:  # type: ignore[override]
        return self._current.readings

    @property
    def notes(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return self._current.notes

    def record(self, call: CallRecord) -> None:
        self._current.record(call)

    def record_reading(self, reading: EvidenceReading) -> None:
        self._current.record_reading(reading)


class DaemonView:
    """One daemon as a gate sees it: results or :class:`Unobservable`."""

    def __init__(
        self,
        daemon: DaemonObservation,
        evidence: GateEvidence,
        latest_allowed: datetime | None = None,
    ) -> None:
        self._daemon = daemon
        self._evidence = evidence
        self.name = daemon.name
        self.endpoint = daemon.endpoint
        #: The latest timestamp an answer may carry (the run's clock plus the skew).
        self.latest_allowed = latest_allowed

    def not_in_future(self, when: datetime, what: str) -> datetime:
        """``when``, or :class:`Unobservable` naming ``what`` if it lies past the run's clock
        plus the allowed skew (an answer dated in the future proves nothing)."""
        latest = self.latest_allowed
        if latest is not None and when.tzinfo is not None and when > latest:
            # the message is only made for a timestamp that is refused (called per timestamp)
            refuse_future(when, latest, f"{self.name} {self.endpoint} {what}")
        return when

    def call(self, method: str, reading: int = 1) -> CallRecord:
        """The record of reading number ``reading`` of ``method`` (recorded as evidence)."""
        readings = self._daemon.readings(method)
        if len(readings) < reading:
            raise Unobservable(
                f"{self.name} {self.endpoint} {method}: reading {reading} was not taken in this "
                "run (the gate catalog does not declare it as a need)"
            )
        record = readings[reading - 1]
        self._evidence.record(record)
        return record

    def result(self, method: str, reading: int = 1) -> Any:
        """The result of ``method``; raises :class:`Unobservable` if the call failed."""
        record = self.call(method, reading)
        if not record.ok:
            raise Unobservable(f"{self.name}: {record.error}")
        return record.result


class ObservedView:
    """The observation as one gate sees it; everything it reads becomes its evidence."""

    #: id(reading) -> {(decode, timestamps, latest allowed): (evidence, why it is refused)}
    _decoded: ClassVar[dict[int, dict[Any, tuple[Any, str | None]]]] = {}
    _held: ClassVar[list[EvidenceReading]] = []

    def __init__(
        self,
        observation: Observation,
        evidence: GateEvidence,
        decode: Callable[[Any], Any] = _identity,
        timestamps: Callable[[Any], Iterable[tuple[str, datetime]]] = timestamps_in,
    ) -> None:
        self.observation = observation
        self.evidence_log = evidence
        self._decode = decode
        self._timestamps = timestamps

    def daemon(self, name: str) -> DaemonView:
        """One daemon, by the name the pack gives it."""
        try:
            return DaemonView(
                self.observation.daemons[name],
                self.evidence_log,
                self.observation.latest_allowed,
            )
        except KeyError:
            raise Unobservable(f"daemon {name!r} was not observed in this run") from None

    @property
    def now(self) -> datetime:
        """The moment the run judges at (when the observation started), aware UTC."""
        return self.observation.now

    def evidence(self, accessor: str) -> Any:
        """Provider evidence (``providers.Evidence``) read once for the run; raises
        :class:`Unobservable` naming the endpoint and what was missing if it could not be read."""
        reading = self.observation.evidence.get(accessor)
        if reading is None:
            raise Unobservable(
                f"{accessor!r} evidence was not read in this run (the gate catalog does not "
                "declare it as a need)"
            )
        self.evidence_log.record_reading(reading)
        if not reading.ok:
            raise Unobservable(f"{reading.kind} evidence: {reading.error}")
        # Decoded and checked once per reading and process; a future timestamp fails every
        # gate that reads it, each with a fresh exception.
        latest = self.observation.latest_allowed
        key = (self._decode, self._timestamps, latest)
        slot = ObservedView._decoded.get(id(reading))
        if slot is None:
            slot = ObservedView._decoded[id(reading)] = {}
            try:
                weakref.finalize(reading, ObservedView._decoded.pop, id(reading), None)
            except TypeError:  # no weak reference: held, so that its id is never reused
                ObservedView._held.append(reading)
        if key not in slot:
            slot[key] = self._checked(reading, latest)
        evidence, future = slot[key]
        if future is not None:
            raise Unobservable(future)
        return evidence

    def _checked(self, reading: EvidenceReading, latest: datetime) -> tuple[Any, str | None]:
        """The reading decoded, and why it is refused if it is dated in the future."""
        evidence = self._decode(reading.evidence)
        where = f"{reading.kind} evidence from {reading.uri}"
        try:
            for path, when in self._timestamps(evidence):
                refuse_future(when, latest, f"{where}: {path}")
        except Unobservable as exc:
            return None, str(exc)
        return evidence, None

    def note(self, name: str, value: Any) -> None:
        """Keep a computed value (a diff, a count) as evidence beside the raw answers."""
        self.evidence_log.notes.append((name, value))
