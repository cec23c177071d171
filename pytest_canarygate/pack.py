"""A runbook pack: what the engine must be told to gate one kind of system's runbook.

The engine observes daemons over JSON-RPC, reads evidence through providers, judges gates and
seals the run; it knows nothing about any particular daemon. A pack supplies that knowledge:
its gate catalog, the daemons a config must name, how to call their read-only methods, which
evidence a gate may ask for, the settings tables it adds to the config, the fixtures the engine
parametrizes from the observation, and optionally a simulator.

A pack registers itself with the ``pytest_canarygate_packs`` hook::

    @pytest.hookimpl
    def pytest_canarygate_packs(config):
        return [Pack(name="kv", catalog=HERE / "catalog.toml", daemons=("old", "new"))]
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import NamedTuple
from typing import Protocol

from pytest_canarygate.clock import timestamps_in

if TYPE_CHECKING:
    from pytest_canarygate.config import TableReader
    from pytest_canarygate.observation import Observation

__all__ = [
    "EvidenceAccessor",
    "GateParameter",
    "Pack",
    "SimulatedFleet",
]


class EvidenceAccessor(NamedTuple):
    """One kind of evidence a gate may ask for with ``needs = ["evidence:<name>"]``.

    ``read(provider, since)`` asks the provider of ``kind`` (the config's ``[evidence]`` key)
    for it; history accessors use ``since``, the oldest moment any window of the run needs.
    """

    kind: str
    read: Callable[[Any, datetime], Any]


@dataclass(frozen=True)
class GateParameter:
    """A fixture the engine parametrizes from the observation: one gate instance per value.

    ``values(observation)`` returns the values, or None when the observation cannot tell
    (then the one instance is UNOBSERVABLE with ``unobservable``); an empty list gives one
    INCONCLUSIVE instance with ``empty``. It is given each daemon's first readings only, and
    no provider evidence (:meth:`Observation.first_round`): a serial run collects its gates
    while the later readings are still being taken.
    """

    fixture: str
    values: Callable[[Observation], Sequence[str] | None]
    unobservable: str
    empty: str


class SimulatedFleet(Protocol):
    """What a pack's simulator returns: where its daemons and evidence are, and how to stop."""

    @property
    def endpoints(self) -> Mapping[str, str]:
        """Daemon name to ``unix://`` endpoint."""

    @property
    def evidence(self) -> Mapping[str, str]:
        """Evidence kind to URI; replaces the config's ``[evidence]`` table whole."""

    def stop(self) -> None:
        """Stop every process of the fleet and remove its files."""


@dataclass(frozen=True)
class Pack:
    """Everything the engine needs to know about one runbook and the system it migrates."""

    #: Short name, as ``[migration] pack`` in the config selects it.
    name: str
    #: The gate catalog (TOML): runbook items, gates, phases, read-only methods.
    catalog: Path
    #: Daemons every config must define under ``[daemons.<name>]``, in display order.
    daemons: tuple[str, ...]
    #: Parameters sent with a method; methods not listed are called without params.
    method_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Read first and last on every daemon (a restart in between shows as two identities).
    bracket_method: str | None = None
    #: Evidence a gate may need, by accessor name.
    accessors: Mapping[str, EvidenceAccessor] = field(default_factory=dict)
    #: Evidence kinds a daemon's own socket serves when ``[evidence]`` names no other endpoint,
    #: and which daemon serves them.
    daemon_served_kinds: tuple[str, ...] = ()
    evidence_daemon: str | None = None
    #: The URI schemes (``"file"``, ``"unix"``, ``"http"``, ``"https"``) the pack's providers
    #: read each evidence kind from: an ``[evidence]`` URI of another scheme is refused when the
    #: config is loaded. A kind not listed accepts any scheme the engine parses; and none is
    #: checked when a conftest or plugin providing no pack implements
    #: ``pytest_canarygate_make_provider`` (its providers may claim any URI).
    evidence_schemes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Top-level config tables the pack reads, and the parser that turns them into the pack's
    #: settings object (``config.pack_settings``); called with a reader of the whole file.
    settings_tables: tuple[str, ...] = ()
    parse_settings: Callable[[TableReader], Any] | None = None
    #: How far back history must reach for the longest window of these settings.
    history: Callable[[Any], timedelta] | None = None
    #: Turns provider evidence into JSON and back, so xdist workers judge the same records.
    encode: Callable[[Any], Any] = field(default=lambda value: value)
    decode: Callable[[Any], Any] = field(default=lambda value: value)
    #: The moments decoded evidence says things happened at (path, aware datetime); none may
    #: lie past the run's clock plus the skew. Default: every datetime inside it.
    timestamps: Callable[[Any], Iterable[tuple[str, datetime]]] = timestamps_in
    #: The pid a daemon reports in an answer (its bracket method's), compared with the pid the
    #: kernel says served the socket: a mismatch shows a relay or proxy in front of it.
    reported_pid: Callable[[Any], int | None] = field(default=lambda result: None)
    #: Facts of the observation worth keeping in the signed statement (``facts``), so that
    #: later runs can judge the history of the archive from them (e.g. which sessions a
    #: selector named); JSON-ready, small.
    run_facts: Callable[[Any], dict[str, Any]] = field(default=lambda observation: {})
    #: What fills the ``{name}`` placeholders of gate titles, from the pack's settings (None
    #: when the config has none of its tables): the configured windows, say.
    title_values: Callable[[Any], Mapping[str, str]] = field(default=lambda settings: {})
    #: Fixtures parametrized from the observation (``per = "<fixture>"`` in the catalog).
    parameters: tuple[GateParameter, ...] = ()
    #: Called with the first readings (:meth:`Observation.first_round`) while a serial run
    #: waits for the later ones, to derive ahead what its gates will derive first from them
    #: (answers checked, indexed). It judges nothing and changes nothing the gates judge.
    prepare: Callable[[Observation], None] | None = None
    #: Start a simulated fleet for ``(scenario, phase)``; ``check_scenario(scenario)`` raises
    #: ConfigError for a scenario the simulator does not know, before anything is created.
    simulator: Callable[[str, str], SimulatedFleet] | None = None
    check_scenario: Callable[[str], None] | None = None
    #: What a daemon endpoint looks like, for config error messages.
    endpoint_example: str = "unix:///absolute/path/to/daemon.sock"

    def parameter(self, fixture: str) -> GateParameter | None:
        """The parameter that parametrizes ``fixture``, if any."""
        return next((p for p in self.parameters if p.fixture == fixture), None)
