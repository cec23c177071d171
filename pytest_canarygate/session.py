"""``GateSession``: the per-run state of canarygate, registered as a plugin when a phase is set.

On the controller (or a run without xdist) it loads the config and catalog, starts the simulator
if asked, takes the one observation of the run, collects every gate's verdict and writes the
run's folder. On an xdist worker it only loads the observation the controller wrote.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import json
import os
import shutil
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_canarygate import allure_evidence
from pytest_canarygate import bundle
from pytest_canarygate import clock
from pytest_canarygate import progress
from pytest_canarygate import run_inputs
from pytest_canarygate.allure_results import AllureResults
from pytest_canarygate.allure_results import ItemResult
from pytest_canarygate.catalog import Catalog
from pytest_canarygate.catalog import GateSpec
from pytest_canarygate.catalog import load_catalogs
from pytest_canarygate.catalog import needs_of
from pytest_canarygate.catalog import render_title
from pytest_canarygate.config import CanarygateConfig
from pytest_canarygate.config import load_config
from pytest_canarygate.config import loosened
from pytest_canarygate.config import simulator_defaults
from pytest_canarygate.config import with_endpoints
from pytest_canarygate.custody import CUSTODY_FILE
from pytest_canarygate.custody import Custody
from pytest_canarygate.custody import gather as gather_custody
from pytest_canarygate.custody import waiver_for
from pytest_canarygate.custody import waiver_misses
from pytest_canarygate.decision import decide
from pytest_canarygate.errors import CanarygateError
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.gate import GATE_ID_FIXTURE
from pytest_canarygate.gate import GATE_MARK
from pytest_canarygate.gate import gate_ids
from pytest_canarygate.observation import EVIDENCE_NEED
from pytest_canarygate.observation import CurrentGateEvidence
from pytest_canarygate.observation import GateEvidence
from pytest_canarygate.observation import Observation
from pytest_canarygate.observation import ObservedView
from pytest_canarygate.observation import Observing
from pytest_canarygate.observation import observe
from pytest_canarygate.observation import report_progress
from pytest_canarygate.observation import simulated_endpoints
from pytest_canarygate.observation import start_observing
from pytest_canarygate.observation import utc_now
from pytest_canarygate.pack import GateParameter
from pytest_canarygate.pack import Pack
from pytest_canarygate.pack import SimulatedFleet
from pytest_canarygate.provider import Timeouts
from pytest_canarygate.results import REPORT_PROPERTY
from pytest_canarygate.results import GateResult
from pytest_canarygate.results import PendingItem
from pytest_canarygate.results import RunOutcome
from pytest_canarygate.results import RunVerdict
from pytest_canarygate.selection import narrowing_options
from pytest_canarygate.textsafe import visible
from pytest_canarygate.verdicts import DELIBERATE
from pytest_canarygate.verdicts import Unobservable
from pytest_canarygate.verdicts import Verdict
from pytest_canarygate.verdicts import skip_reason
from pytest_canarygate.verdicts import verdict_of

SESSION_KEY = pytest.StashKey["GateSession"]()
GATE_KEY = pytest.StashKey[GateSpec]()
NOT_A_GATE_KEY = pytest.StashKey[bool]()
#: What a stray test (collected in a phase run, without @gate) is recorded as, gate and item.
NOT_A_GATE = "(not a gate)"
EVIDENCE_KEY = pytest.StashKey[GateEvidence]()
ALLURE_RESULT_KEY = pytest.StashKey[ItemResult]()
#: A waived gate instance: the waiver and the verdict it would have had.
WAIVED_KEY = pytest.StashKey[tuple[dict[str, Any], str]]()
#: The user property naming the Allure result file written for a gate instance.
ALLURE_RESULT_PROPERTY = "canarygate_allure_result"
#: What a worker could not write, handed to the controller with its output.
WRITE_PROBLEMS_KEY = "canarygate_write_problems"
WORKER_INPUT_KEY = "canarygate_run_dir"
#: More failed gates than this, and pytest's section of every failure (one per gate, and
#: slower than linear in the run's size) is left out unless ``--tb`` asked for it: the short
#: summary still names each, and the bundle has every message whole.
MAX_FAILURE_SECTIONS = 50
RUN_FILE = "run.json"
CONFIG_COPY = "canarygate.toml"
RUNBOOK_DIR = "runbook"
#: The fixture every gate instance of a ``[[targets]]`` run is parametrized with: its target.
TARGET_FIXTURE = "canarygate_target"


def _parameter_values(
    parameter: GateParameter, observation: Observation | None, target: str | None = None
) -> tuple[list[Any], list[str]]:
    """The values (and ids) of a pack parameter as ``observation`` has them; one
    :class:`NoParameter` when it has none. For a target, the reason names it and what could
    not be observed there."""
    found = parameter.values(observation.first_round()) if observation else None
    if found:
        return list(found), list(found)
    unobservable, empty = parameter.unobservable, parameter.empty
    if target is not None:  # only for a missing value: problems() reads every call
        problems = observation.problems() if observation else []
        cause = f" ({problems[0]})" if problems else ""
        unobservable, empty = f"target {target}: {unobservable}{cause}", f"target {target}: {empty}"
    if found is None:
        return [NoParameter(Verdict.UNOBSERVABLE, unobservable)], [
            f"{parameter.fixture}-unobservable"
        ]
    return [NoParameter(Verdict.INCONCLUSIVE, empty)], ["none"]


@dataclass(frozen=True)
class NoParameter:
    """Stands in for a pack parameter (a session, a host) when there is none to judge."""

    verdict: Verdict
    reason: str


class GateSession:
    """The state and the hooks of one canarygate run in one process."""

    def __init__(
        self,
        config: pytest.Config,
        *,
        phase: str,
        pack: Pack,
        settings: CanarygateConfig | None,
        catalog: Catalog,
        run_dir: Path,
        is_worker: bool,
    ) -> None:
        self.config = config
        self.phase = phase
        self.pack = pack
        self.stage: str | None = config.getoption("canarygate_stage")
        self.scenario: str | None = config.getoption("canarygate_sim")
        self.settings = settings
        self.catalog = catalog
        self.run_dir = run_dir
        self.is_worker = is_worker
        self.observation: Observation | None = None
        #: a serial run's observation while its later readings are taken (collection goes on)
        self.observing: Observing | None = None
        #: what the first round of readings found, until the whole observation is in
        self.first_readings: Observation | None = None
        #: the daemons' endpoints as configured (``<target>/<daemon>`` in a [[targets]] run)
        self.endpoints: dict[str, str] = {}
        self.aborted = False
        self._collector_was_enabled = True
        self.fleet: SimulatedFleet | None = None
        self.results: dict[str, GateResult] = {}
        #: the Allure result file each gate instance's process reported writing (controller)
        self.result_files: dict[str, str] = {}
        self.outcome: RunOutcome | None = None
        #: Allure files this run's processes could not write (``path: reason``)
        self.write_problems: list[str] = []
        self.bundle: Path | None = None
        self.started_at = utc_now()
        self.signer: Any = None
        self.ephemeral_key = False
        self.ephemeral_public_key: Path | None = None
        #: the chain of custody as found at the start (``custody.json``)
        self.custody = Custody(phase=phase)
        self.custody_digest: str | None = None
        #: nodeids of the gates that should report (collected, after phase filtering)
        self.expected: set[str] = set()
        #: the evidence log of the gate running now, behind the run's one ``ObservedView``
        self.current_evidence = CurrentGateEvidence()
        #: from the end of the observation to the last verdict (controller only)
        self.judging: progress.Stage | None = None
        #: the observation the gate running now judges: its own target's in a [[targets]] run
        self.current_observation: Observation | None = None
        #: the run's shared ``ObservedView`` objects, pointed at each gate's target in turn
        self.shared_views: list[ObservedView] = []
        #: each gate's title, rendered once with the run's settings
        self._titles: dict[str, str] = {}
        self._facts: dict[str, Any] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def for_controller(cls, config: pytest.Config, phase: str) -> GateSession:
        """Build the session of the process that observes and reports."""
        try:
            run_inputs.check_option_spelling(config)
            pack, settings = run_inputs.load_settings(config)
            catalog = run_inputs.load_catalog(config, pack, settings)
            if phase not in catalog.phases:
                raise ConfigError(
                    f"--phase={phase}: not a phase of {catalog.path}; "
                    f"known: {', '.join(catalog.phases)}"
                )
            run_inputs.check_scenario(config, pack)
            signer, ephemeral = run_inputs.resolve_signer(config)
            run_dir = run_inputs.new_run_dir(config, settings, phase)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        session = cls(
            config,
            phase=phase,
            pack=pack,
            settings=settings,
            catalog=catalog,
            run_dir=run_dir,
            is_worker=False,
        )
        session.signer, session.ephemeral_key = signer, ephemeral
        if settings is not None and settings.path is not None:
            # The exact config (windows, thresholds, endpoints) becomes part of the evidence.
            shutil.copyfile(settings.path, run_dir / CONFIG_COPY)
        runbook = _runbook_document(config.rootpath, catalog)
        if runbook is not None:
            # The runbook text the gates judged against, signed with the evidence: the HTML
            # report links to it, and an auditor reads the words that were in force.
            (run_dir / RUNBOOK_DIR).mkdir()
            shutil.copyfile(runbook, run_dir / RUNBOOK_DIR / runbook.name)
        return session

    @classmethod
    def for_worker(cls, config: pytest.Config, phase: str, run_dir: Path) -> GateSession:
        """Build the session of an xdist worker: it judges the controller's observation."""
        data = json.loads((run_dir / RUN_FILE).read_text())
        catalog = load_catalogs(Path(p) for p in data["catalogs"])
        try:
            pack = run_inputs.choose_pack(
                run_inputs.installed_packs(config), data["pack"], str(run_dir / RUN_FILE)
            )
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        # A simulator run without a config file judges with the pack's built-in defaults.
        settings = simulator_defaults(pack, {})
        if data.get("config"):
            # Judge with the copy sealed into the run, not the file as it may be now.
            sealed = run_dir / CONFIG_COPY
            settings = load_config(sealed, pack, base_dir=Path(data["config"]).parent)
            if settings.digest != data["config_digest"]:
                raise pytest.UsageError(f"{sealed}: does not match the config the run started with")
        session = cls(
            config,
            phase=phase,
            pack=pack,
            settings=settings,
            catalog=catalog,
            run_dir=run_dir,
            is_worker=True,
        )
        with _collector_paused():
            session.observation = Observation.load_run(run_dir)
        session.custody = Custody.load(run_dir)
        return session

    @property
    def targets(self) -> list[str]:
        """The run's ``[[targets]]`` names (empty: one implicit target)."""
        return self.observation.target_names if self.observation is not None else []

    @property
    def migration_id(self) -> str:
        return self.settings.migration_id if self.settings else "simulated"

    @property
    def results_dir(self) -> Path:
        return self.run_dir / allure_evidence.RESULTS_DIR

    @functools.cached_property
    def allure(self) -> AllureResults | None:
        """What writes each gate's Allure result (None when allure-pytest is disabled)."""
        if not allure_evidence.enabled(self.config):
            return None
        return AllureResults(
            self.results_dir,
            migration_id=self.migration_id,
            phase=self.phase,
            catalog=self.catalog,
            runbook_url=self.settings.runbook_url if self.settings else None,
            attach_capture=getattr(self.config.option, "attach_capture", True),
        )

    # ------------------------------------------------------------------ controller: observe
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.is_worker:
            return
        # No cyclic garbage collection while the observation is taken: decoding answers of
        # thousands of panes makes no cycles, yet would trigger full collections that rescan
        # everything decoded so far. Resumed once it is in, with all of it frozen.
        self._collector_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._start_and_observe()
        except BaseException:
            self._abort()
            raise
        if self.observing is None:
            self._resume_collector()

    def _abort(self) -> None:
        """No verdict will come: never leave a folder that looks like a run in progress."""
        self.aborted = True
        self._flush_results()
        self._resume_collector()
        aborted = self.run_dir.with_name(self.run_dir.name.replace("-running", "-aborted"))
        os.replace(self.run_dir, aborted)
        self.run_dir = aborted
        self.stop_simulator()

    def _resume_collector(self) -> None:
        """Freeze what the observation made (it lives until the run ends: the collections
        that collecting thousands of gates triggers need not rescan it), then collect again."""
        gc.freeze()
        if self._collector_was_enabled:
            gc.enable()

    def _finish_observing(self) -> None:
        """Wait for the observation a serial run is still taking, then do what follows it."""
        observing, self.observing = self.observing, None
        if observing is None:
            return
        try:
            self.observation = observing.result()
            self.first_readings = None
            self._observed()
        except BaseException:
            self._abort()
            raise
        self._resume_collector()

    def _flush_results(self) -> None:
        """Wait for the Allure files still being written; keep what could not be (their gates
        then have no result file, and the bundle is incomplete: :meth:`_build_outcome`). A
        worker hands them to the controller (:meth:`take_write_problems`)."""
        writer = self.__dict__.get("allure")  # the cached property, made at the first result
        problems = writer.flush() if writer is not None else []
        if self.is_worker:
            if problems and hasattr(self.config, "workeroutput"):
                self.config.workeroutput[WRITE_PROBLEMS_KEY] = problems
            return
        self.take_write_problems(problems)

    def take_write_problems(self, problems: object) -> None:
        """Keep and say the Allure files a process of the run could not write."""
        if not isinstance(problems, list) or not problems:
            return
        inside = f"{self.run_dir}{os.sep}"  # named from the run folder, which is renamed
        problems = [str(p).replace(inside, "") for p in problems]
        self.write_problems += problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        self._say(f"could not write {visible(problems[0])}{more}")

    def _write_line(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            if reporter._tw.width_of_current_line:  # not after a row of progress dots
                reporter._tw.line()
            reporter.write_line(line)

    def _say(self, message: str) -> None:
        self._write_line(f"canarygate: {message}")

    def _found_simulator(self, marked: list[str]) -> dict[str, Any]:
        """The target of a run configured as live whose daemons ``marked`` carry the
        simulator's marker: it judged the simulator."""
        self._say(f"daemon(s) {', '.join(marked)} are the bundled simulator: target SIMULATED")
        self.scenario = "unknown (found the simulator's marker)"
        return {"kind": "simulated", "scenario": self.scenario}

    def _stage(self, label: str) -> progress.Stage:
        """A stage of the run that prints its line only when it took a while."""
        return progress.Stage(label, self._write_line, threshold_s=progress.DEFAULT_THRESHOLD_S)

    def _start_and_observe(self) -> None:
        settings = self.settings
        target: dict[str, Any] = {"kind": "live", "scenario": None}
        if self.scenario and self.pack.simulator is not None:
            self._say(f"starting the simulated fleet (scenario {self.scenario})")
            try:
                self.fleet = self.pack.simulator(self.scenario, self.phase)
            except CanarygateError as exc:
                raise pytest.UsageError(f"--canarygate-sim={self.scenario}: {exc}") from None
            endpoints = dict(self.fleet.endpoints)
            settings = with_endpoints(
                settings or simulator_defaults(self.pack, endpoints),
                endpoints,
                evidence=self.fleet.evidence,
            )
            self.settings = settings
            target = {"kind": "simulated", "scenario": self.scenario}
        assert settings is not None
        endpoints = {name: d.endpoint for name, d in settings.daemons.items()}
        targets = {
            t.name: {name: d.endpoint for name, d in t.daemons.items()} for t in settings.targets
        }
        if targets:
            endpoints = {
                f"{tname}/{name}": uri for tname, ds in targets.items() for name, uri in ds.items()
            }
        marked = simulated_endpoints(
            {name: uri for name, uri in endpoints.items() if uri.startswith("unix:")}
        )
        if marked and target["kind"] == "live":
            target = self._found_simulator(marked)
        plan = needs_of(self.catalog.gates_for(self.phase, self.stage))
        accessors = plan.pop(EVIDENCE_NEED, {})
        evidence_plan = {
            name: (self.pack.accessors[name], settings.evidence_uri(self.pack.accessors[name].kind))
            for name in accessors
        }
        timeouts = Timeouts(settings.connect_timeout_s, settings.read_timeout_s)

        def make_provider(kind: str, uri: str) -> Any:
            return self.config.hook.pytest_canarygate_make_provider(
                config=self.config, kind=kind, uri=uri, timeouts=timeouts
            )

        options: dict[str, Any] = dict(
            phase=self.phase,
            target=target,
            connect_timeout=settings.connect_timeout_s,
            read_timeout=settings.read_timeout_s,
            interval_s=settings.version_interval_s,
            method_params=self.pack.method_params,
            bracket_method=self.pack.bracket_method,
            evidence_plan=evidence_plan,
            make_provider=make_provider,
            encode=self.pack.encode,
            clock_skew_s=settings.clock_skew_s,
            since=settings.history_since(clock.wall_now()),
            config_where=settings.where,
            targets=targets or None,
            ssh=settings.ssh,
        )
        self.endpoints = endpoints
        if targets or self.config.pluginmanager.has_plugin("dsession"):
            # xdist workers read the observation file, and targets are parametrized from
            # their whole observation: both wait for it here.
            self.observation = observe(endpoints, plan, **options)
            self._observed()  # says what was read
        else:
            # A serial run collects its gates while the observation is taken: gates are
            # parametrized from the first readings (GateParameter), and the whole observation
            # is waited for when collection ends (_finish_observing). A phase with no gate per
            # session collects before even the first readings are in.
            self.observing = start_observing(endpoints, plan, **options)
            if any(g.per for g in self.catalog.gates_for(self.phase, self.stage)):
                self._wait_first_readings()
        # Collection and every gate, timed until the verdicts are in (a line when over 1 s).
        self.judging = self._stage("judged")

    def _wait_first_readings(self) -> Observation:
        """The first round of readings of the observation a serial run is taking, waited for
        once, by the first that needs them; then the pack prepares what its gates will ask of
        them, while the later readings wait their interval."""
        if self.first_readings is None:
            assert self.observing is not None
            self.first_readings = self.observing.first_readings()
            if self.pack.prepare is not None:
                # The second readings, which come after the pause, are then decoded with
                # nothing else to do. Whatever breaks here breaks again in the gates that need
                # it, and is judged there: preparing never decides a verdict.
                with contextlib.suppress(Exception):
                    self.pack.prepare(self.first_readings)
        return self.first_readings

    def _observed(self) -> None:
        """Once the observation is in: say what was read, write it, gather the chain of
        custody, tell the hooks, write the run's first files."""

        assert self.observation is not None
        assert self.settings is not None
        settings, endpoints = self.settings, self.endpoints
        target = self.observation.target
        report_progress(self.observation, self._say)
        remote_marked = [
            f"{tname}/{name}"
            for tname, info in self.observation.targets.items()
            for name in info.get("simulated", [])
        ]
        if remote_marked and target["kind"] == "live":
            target = self.observation.target = self._found_simulator(remote_marked)
        self.observation.write(self.run_dir)
        try:
            self.custody = gather_custody(
                settings,
                self.catalog,
                self.phase,
                self.run_dir.parents[2],
                endpoints,
                self.observation.latest_allowed or self.observation.now,
            )
        except CanarygateError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.custody_digest = self.custody.write(self.run_dir)
        if self.custody.relies_on:
            link = self.custody.relies_on[0]
            self._say(f"relies on the {link['phase']} bundle {link['bundle']}")
        for problem in self.custody.problems:
            self._say(problem)
        if self.config.hook.pytest_canarygate_observation_ready.get_hookimpls():
            # a copy, so a hook cannot change what the gates judge (none made without a hook)
            self.config.hook.pytest_canarygate_observation_ready(
                config=self.config, observation=copy.deepcopy(self.observation)
            )
        self._write_run_file(target)
        if allure_evidence.enabled(self.config):
            allure_evidence.write_run_files(
                self.results_dir,
                self.observation,
                migration_id=self.migration_id,
                phase=self.phase,
                run_name=self.run_dir.name,
            )

    def _run_facts(self) -> dict[str, Any]:
        """The pack's facts of the observation (made once: the observation does not change)."""
        if self.observation is None:
            return {}
        if self._facts is None:
            self._facts = self.pack.run_facts(self.observation)
        return self._facts

    def _write_run_file(self, target: dict[str, Any], **extra: Any) -> None:
        settings = self.settings
        data = {
            "phase": self.phase,
            "pack": self.pack.name,
            "stage": self.stage,
            "migration_id": self.migration_id,
            "target": target,
            "config": str(settings.path) if settings and settings.path else None,
            "config_digest": settings.digest if settings else None,
            "catalog": str(self.catalog.path),
            "catalogs": [str(p) for p in self.catalog.paths],
            "catalog_digest": self.catalog.digest,
            "started_at": self.started_at,
            "peers": (self.observation.peers(self.pack.reported_pid) if self.observation else []),
            "facts": self._run_facts(),
            **extra,
        }
        (self.run_dir / RUN_FILE).write_text(_readable_json(data) + "\n")

    # ------------------------------------------------------------------ collection
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        mark = metafunc.definition.get_closest_marker(GATE_MARK)
        if mark is not None and len(gate_ids(mark)) > 1:
            # Checked with the other @gate mistakes when collection ends (a usage error).
            judged = list(gate_ids(mark))
            metafunc.parametrize(GATE_ID_FIXTURE, judged, ids=judged, indirect=True)
        if mark is not None and not self._may_run_here(gate_ids(mark), metafunc):
            # Another phase's gate is dropped when collection ends: one instance of it, not
            # one per session of the fleet, so collecting a phase costs what its gates do.
            return
        if self.observation is not None and self.observation.targets:
            if mark is not None:  # a stray test fails once, not once per target
                self._parametrize_targets(metafunc, self.observation)
            return
        for parameter in self.pack.parameters:
            if parameter.fixture not in metafunc.fixturenames:
                continue
            observed = self.observation
            if observed is None and self.observing is not None:
                try:
                    observed = self._wait_first_readings()
                except Exception:
                    # One unobservable instance here; the run is aborted with the cause when
                    # collection ends (_finish_observing), not once per module.
                    observed = None
            values, ids = _parameter_values(parameter, observed)
            metafunc.parametrize(parameter.fixture, values, ids=ids, indirect=True)

    def _may_run_here(self, ids: tuple[str, ...], metafunc: pytest.Metafunc) -> bool:
        """Whether a test judging the gates ``ids`` runs in this run: one of them does, or
        one names no gate of the catalog (a usage error, reported when collection ends), or
        its own parameters may carry marks (a ``pytest.param`` may name another gate, which
        collection then judges by)."""
        for parametrize in metafunc.definition.iter_markers("parametrize"):
            if "argvalues" in parametrize.kwargs:
                values = parametrize.kwargs["argvalues"]
            elif len(parametrize.args) > 1:
                values = parametrize.args[1]
            else:
                return True  # a form not read here: left to collection
            # a generator is not read here (it would be used up): left to collection too
            if not isinstance(values, list | tuple) or any(getattr(v, "marks", ()) for v in values):
                return True
        gates = self.catalog.gates
        return any(
            not isinstance(g, str) or g not in gates or gates[g].runs_in(self.phase, self.stage)
            for g in ids
        )

    def _parametrize_targets(self, metafunc: pytest.Metafunc, observation: Observation) -> None:
        """One instance per target and, within it, per value of the pack's parameters as that
        target's observation has them: one ``parametrize`` over tuples, since the values differ
        per target. Each instance joins its target's xdist group (``--dist loadgroup``)."""
        if TARGET_FIXTURE not in metafunc.fixturenames:
            # Every gate judges one target, whether or not it asks which.
            metafunc.fixturenames.append(TARGET_FIXTURE)
        parameters = [p for p in self.pack.parameters if p.fixture in metafunc.fixturenames]
        grouped = self.config.pluginmanager.hasplugin("xdist")
        rows = []
        for tname in observation.target_names:
            view = observation.for_target(tname)
            combos: list[tuple[tuple[Any, ...], tuple[str, ...]]] = [((), ())]
            for parameter in parameters:
                values, ids = _parameter_values(parameter, view, tname)
                combos = [
                    ((*vs, v), (*is_, i))
                    for vs, is_ in combos
                    for v, i in zip(values, ids, strict=True)
                ]
            marks = [pytest.mark.xdist_group(tname)] if grouped else []
            rows += [
                pytest.param(tname, *vs, id="-".join((tname, *is_)), marks=marks)
                for vs, is_ in combos
            ]
        argnames = [TARGET_FIXTURE, *(p.fixture for p in parameters)]
        metafunc.parametrize(argnames, rows, indirect=True)

    def title_of(self, gate: GateSpec) -> str:
        """The gate's title with the configured windows in it; a placeholder the pack does
        not fill is a usage error, found when the gate is collected."""
        title = self._titles.get(gate.id)
        if title is None:
            pack_settings = self.settings.pack_settings if self.settings else None
            try:
                title = render_title(gate, self.pack.title_values(pack_settings))
            except ConfigError as exc:
                raise pytest.UsageError(f"{self.catalog.path}: {exc}") from None
            self._titles[gate.id] = title
        return title

    def _check_shared_gates(self, nodeid: str, ids: tuple[str, ...]) -> None:
        """The gates one test judges (``@gate("a", "b")``) are all in the catalog and, since
        one test has one set of parameters, all parametrized alike (the same ``per``)."""
        unknown = [g for g in ids if g not in self.catalog.gates]
        if unknown:
            raise pytest.UsageError(
                f"{nodeid}: @gate names {', '.join(map(repr, unknown))}, no gate of "
                f"{self.catalog.path}"
            )
        pers = {self.catalog.gates[g].per for g in ids}
        if len(pers) > 1:
            shown = ", ".join(f"{g} per={self.catalog.gates[g].per!r}" for g in ids)
            raise pytest.UsageError(
                f"{nodeid}: one test judges gates with different 'per' ({shown}); give each "
                "its own test"
            )

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        selected = []
        for item in items:
            mark = item.get_closest_marker(GATE_MARK)
            if mark is None:
                # A phase run judges gates only: a stray test fails at setup, the same with and
                # without xdist, and its failure counts against the run.
                item.stash[NOT_A_GATE_KEY] = True
                selected.append(item)
                if not self.is_worker:
                    self.expected.add(item.nodeid)
                continue
            if len(gate_ids(mark)) > 1:
                self._check_shared_gates(item.nodeid.split("[")[0], gate_ids(mark))
            gate_id = _judged_gate_id(item, mark)
            gate = self.catalog.gates.get(gate_id) if isinstance(gate_id, str) else None
            if gate is None:
                raise pytest.UsageError(
                    f"{item.nodeid}: @gate({gate_id!r}) names no gate of {self.catalog.path}"
                )
            if not gate.runs_in(self.phase, self.stage):
                continue  # another phase's gate: not part of this run, not a deselection
            self.title_of(gate)
            _verdicts_without_traceback(item)
            item.stash[GATE_KEY] = gate
            if not self.is_worker:
                self.expected.add(item.nodeid)
            selected.append(item)
        items[:] = selected

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._finish_observing()
        # The observation, its decoded answers and the collected gates live until the run
        # ends. Kept out of the cyclic collector's sight, the full collections that judging
        # thousands of gates triggers stay cheap (they would rescan all of it each time).
        # Left frozen when the run ends: the process ends with it, and unfrozen, the
        # interpreter would free it all object by object on the way out (most of a second at
        # 10,000 panes). A program calling pytest.main() again in the same process keeps a
        # phase run's observation until it exits.
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(100_000, 50, 100)
        self.config.add_cleanup(lambda: gc.set_threshold(*thresholds))

    # ------------------------------------------------------------------ running a gate
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # Before any fixture: what the gate reads from here on is its own evidence.
        self.current_evidence.switch(item.stash.setdefault(EVIDENCE_KEY, GateEvidence()))
        if item.stash.get(NOT_A_GATE_KEY, False):
            pytest.fail(stray_test_message(item.nodeid), pytrace=False)
        if self.observation is not None and self.observation.targets:
            callspec = getattr(item, "callspec", None)
            target = callspec.params.get(TARGET_FIXTURE) if callspec is not None else None
            if target not in self.observation.targets:
                raise Unobservable(f"this gate instance names no target of the run ({target!r})")
            self.current_observation = self.observation.for_target(target)
            for view in self.shared_views:
                view.observation = self.current_observation

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        self.current_evidence.switch(None)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        # a gate's own bug: where it broke, for its Allure result (its report becomes one line)
        bug = call.excinfo is not None and not isinstance(call.excinfo.value, DELIBERATE)
        trace = report.longreprtext if report.failed and bug else None
        self._record_verdict(item, call, report)
        writer = self.allure
        if writer is not None:
            self._record_allure(writer, item, call, report, trace)
        return report

    def _record_verdict(
        self, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport
    ) -> None:
        """Put the gate's verdict on ``report`` (a user property the controller collects)."""
        gate = item.stash.get(GATE_KEY, None)
        if gate is None:
            if item.stash.get(NOT_A_GATE_KEY, False) and report.when == "setup":
                # Reported under its own name, not as a gate whose worker died.
                report.user_properties.append(
                    (
                        REPORT_PROPERTY,
                        {
                            "gate": NOT_A_GATE,
                            "item": NOT_A_GATE,
                            "verdict": Verdict.FAIL.value,
                            "message": stray_test_message(item.nodeid),
                            "param": None,
                        },
                    )
                )
            return
        verdict: Verdict | None = None
        message = ""
        if report.skipped or hasattr(report, "wasxfail"):
            reason = getattr(report, "wasxfail", "") or skip_reason(report)
            verdict, message = (
                Verdict.FAIL,
                f"gate was skipped or xfailed ({reason}); gates never skip",
            )
        elif report.failed and call.excinfo is not None:
            verdict, message = verdict_of(call.excinfo.value)
        elif report.when == "call" and report.passed:
            verdict = Verdict.PASS
        if verdict is None:
            return
        waiver = self._waiver(gate.id, verdict)
        if waiver is None and self.observation is not None and self.settings is not None:
            misses = waiver_misses(
                self.custody,
                gate.id,
                verdict,
                self.observation.now,
                self.settings.chain.waivable_failures if self.settings.chain else (),
            )
            if misses:
                message = f"{message} (a waiver of this gate did not apply: {'; '.join(misses)})"
        if waiver is not None:
            message = (
                f"WAIVED by {waiver['by']} until {waiver['until']}: {waiver['text']} "
                f"(its own verdict: {verdict.value}: {message or 'passed'})"
            )
            item.stash[WAIVED_KEY] = (waiver, verdict.value)
            verdict = Verdict.WAIVED
            report.outcome = "passed"
            report.longrepr = None
        callspec = getattr(item, "callspec", None)
        target = callspec.params.get(TARGET_FIXTURE) if callspec is not None else None
        param = next(
            (
                callspec.params[p.fixture]
                for p in self.pack.parameters
                if callspec is not None and p.fixture in callspec.params
            ),
            None,
        )
        if not verdict.allows_promotion:
            report.outcome = "failed"
            report.longrepr = f"{verdict.value} [{gate.id} / {gate.item.id}] {message}"
            if hasattr(report, "wasxfail"):
                # pytest does not count a report carrying wasxfail as a failure (exit 0)
                del report.wasxfail
        report.user_properties.append(
            (
                REPORT_PROPERTY,
                {
                    "gate": gate.id,
                    "item": gate.item.id,
                    "verdict": verdict.value,
                    "message": message,
                    "param": param if isinstance(param, str) else None,
                    **({"target": target} if isinstance(target, str) else {}),
                },
            )
        )

    def _record_allure(
        self,
        writer: AllureResults,
        item: pytest.Item,
        call: pytest.CallInfo[None],
        report: pytest.TestReport,
        trace: str | None,
    ) -> None:
        """Fold ``report`` into the item's Allure result (``trace``: where a gate's own bug
        broke, else its report's text); write it after the teardown."""
        result = item.stash.setdefault(ALLURE_RESULT_KEY, ItemResult())
        result.update(report, call, trace)
        if report.when != "teardown":
            return
        gate = item.stash.get(GATE_KEY, None)
        waiver, own_verdict = item.stash.get(WAIVED_KEY, (None, None))
        written = writer.write(
            item,
            result,
            gate=gate,
            title=self.title_of(gate) if gate is not None else None,
            evidence=item.stash.get(EVIDENCE_KEY, None),
            waiver=waiver,
            own_verdict=own_verdict,
            captured={
                "log": report.caplog,
                "stdout": report.capstdout,
                "stderr": report.capstderr,
            },
        )
        report.user_properties.append((ALLURE_RESULT_PROPERTY, written.name))

    def _waiver(self, gate_id: str, verdict: Verdict) -> dict[str, Any] | None:
        if self.observation is None or self.settings is None or self.settings.chain is None:
            return None
        return waiver_for(
            self.custody,
            gate_id,
            verdict,
            self.observation.now,
            self.settings.chain.waivable_failures,
        )

    # ------------------------------------------------------------------ controller: results
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        for key, value in report.user_properties:
            if key == ALLURE_RESULT_PROPERTY and isinstance(value, str):
                self.result_files[report.nodeid] = value
        carries_verdict = any(key == REPORT_PROPERTY for key, _ in report.user_properties)
        if report.failed and not carries_verdict and report.nodeid in self.expected:
            # No verdict travelled with the report: the worker died under this gate. That
            # overrides a PASS its call phase may already have reported.
            first = str(report.longrepr).strip().splitlines()[:1]
            previous = self.results.get(report.nodeid)
            if previous is None or previous.verdict is Verdict.PASS:
                self.results[report.nodeid] = GateResult(
                    report.nodeid,
                    previous.gate if previous else "unknown",
                    previous.item if previous else "unknown",
                    Verdict.FAIL,
                    "no verdict: " + (first[0] if first else "the gate's process died"),
                    previous.param if previous else None,
                    previous.target if previous else _target_in(report.nodeid, self.targets),
                )
        for key, value in report.user_properties:
            if key == REPORT_PROPERTY and isinstance(value, dict):
                previous = self.results.get(report.nodeid)
                if previous is None or previous.verdict is Verdict.PASS:
                    self.results[report.nodeid] = GateResult(
                        report.nodeid,
                        value["gate"],
                        value["item"],
                        Verdict(value["verdict"]),
                        value["message"],
                        value["param"],
                        value.get("target"),
                    )

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._flush_results()
        if self.is_worker or self.aborted:
            return
        self._finish_observing()  # collection never finished (an error, Ctrl-C)
        outcome = self.outcome = self._build_outcome()
        if self.judging is not None:
            self.judging.done(count=len(outcome.results), what="gate instances")
        self._write_final_run_file(outcome)
        self._name_and_seal(outcome)
        if self.config.hook.pytest_canarygate_run_finished.get_hookimpls():
            # copies, so a hook cannot change the run's outcome (none made without a hook)
            self.config.hook.pytest_canarygate_run_finished(
                config=self.config,
                outcome=copy.deepcopy(outcome),
                bundle=self.bundle,
                summary=json.loads((self.run_dir / RUN_FILE).read_text()),
            )
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = exit_status(outcome, require_promotable(self.config))
        if outcome.decision is not None and session.exitstatus in (
            pytest.ExitCode.OK,
            pytest.ExitCode.TESTS_FAILED,
        ):
            # The decision phase exits with its decision (README), so a pipeline can act on it.
            session.exitstatus = outcome.decision.exit_code

    def _build_outcome(self) -> RunOutcome:
        """Every verdict collected, with what the run left out or could not finish."""
        outcome = RunOutcome(self.phase, list(self.results.values()), targets=self.targets)
        ran = {r.gate for r in outcome.results}
        outcome.missing_gates = [
            g.id for g in self.catalog.gates_for(self.phase, self.stage) if g.id not in ran
        ]
        outcome.partial_reasons = narrowing_options(
            self.config, self.stage, self.catalog.path.parent
        )
        outcome.incomplete = bundle.incompleteness(
            self.expected,
            self.results,
            bundle.nodeids_with_results(self.results_dir, self.result_files),
            allure=allure_evidence.enabled(self.config),
        )
        outcome.incomplete += [f"could not write {problem}" for problem in self.write_problems]
        if not outcome.partial_reasons:
            # Nobody narrowed the run, yet a gate of the phase never ran: a module that failed
            # to import or skipped itself, or a gate without its test. Never a green run.
            outcome.incomplete += [
                f"gate {gate_id} of phase {self.phase} never ran (not collected)"
                for gate_id in outcome.missing_gates
            ]
        if self.observation is not None:
            outcome.relayed = [
                p["daemon"] for p in self.observation.peers(self.pack.reported_pid) if p["relayed"]
            ]
        if self.settings is not None:
            outcome.loosened = loosened(self.settings.pack_settings)
        outcome.relies_on = list(self.custody.relies_on)
        outcome.chain_problems = list(self.custody.problems)
        outcome.decision = decide(self.catalog, self.phase, outcome.results, stage=self.stage)
        outcome.signed = self.signer is not None
        outcome.ephemeral_key = self.ephemeral_key
        outcome.simulated = self.scenario is not None
        outcome.pending_items = [
            PendingItem(item.id, item.pending)
            for item in self.catalog.items.values()
            if item.pending and item.phase == self.phase and self.stage in (None, item.stage)
        ]
        return outcome

    def _write_final_run_file(self, outcome: RunOutcome) -> None:
        target = self.observation.target if self.observation else {"kind": "unknown"}
        self._write_run_file(
            target,
            finished_at=utc_now(),
            verdict=outcome.verdict.value,
            scope=outcome.scope,
            partial_reasons=outcome.partial_reasons,
            missing_gates=outcome.missing_gates,
            incomplete=outcome.incomplete,
            counts=dict(outcome.counts),
            gates=[r.as_json() for r in outcome.results],
            pending_items=[p.as_json() for p in outcome.pending_items],
            promotable=outcome.promotable,
            not_promotable_because=outcome.not_promotable_because,
            loosened=outcome.loosened,
            relies_on=outcome.relies_on,
            chain_problems=outcome.chain_problems,
            decision=outcome.decision.as_json() if outcome.decision else None,
            **({"fleet": outcome.fleet_json()} if outcome.targets else {}),
        )

    def _name_and_seal(self, outcome: RunOutcome) -> None:
        """Rename the folder after the verdict, then seal it; a folder that cannot be sealed
        is named ``-unsealed``, never like a verdict."""
        final = bundle.final_name(self.run_dir, outcome.verdict.value)
        os.replace(self.run_dir, final)
        self.run_dir = self.bundle = final
        sealing = self._stage("sealed")
        try:
            self._seal(outcome)
            files, size = bundle.size_of(final)
            sealing.done(count=files, what="files", size_bytes=size)
        except (CanarygateError, OSError) as exc:
            unsealed = final.with_name(final.name.rsplit("-", 1)[0] + "-unsealed")
            os.replace(final, unsealed)
            self.run_dir = self.bundle = unsealed
            outcome.seal_error = f"{type(exc).__name__}: {exc}"

    def _seal(self, outcome: RunOutcome) -> None:
        from pytest_canarygate.ci_outputs import write_ci_outputs
        from pytest_canarygate.signing import file_sha256
        from pytest_canarygate.signing import seal_bundle

        assert self.bundle is not None
        if self.custody_digest is not None:
            now = file_sha256(self.bundle / CUSTODY_FILE)
            if now != self.custody_digest:
                raise CanarygateError(
                    f"{CUSTODY_FILE} changed during the run (sha256 {now[:12]}..., written as "
                    f"{self.custody_digest[:12]}...): the gates may have judged other custody "
                    "than the archive held"
                )
        run = json.loads((self.bundle / RUN_FILE).read_text())
        write_ci_outputs(self.bundle, outcome, run, self.signer)
        keyid = self.signer.public_key.keyid if self.signer else None
        predicate = bundle.build_predicate(
            outcome, run, signer_keyid=keyid, ephemeral=self.ephemeral_key
        )
        seal_bundle(self.bundle, predicate, self.signer)
        if self.signer is not None and self.ephemeral_key:
            self.ephemeral_public_key = bundle.write_ephemeral_public_key(
                self.bundle, self.signer.public_key.to_dict()
            )

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> Generator[None, None, None]:
        # Outermost wrapper: pytest's own failures and short summary come first, so the verdict
        # is the last thing on screen, right above the final counts line.
        self._bound_failure_sections(terminalreporter)
        result = yield
        if not self.is_worker and self.outcome is not None:
            self._write_summary(terminalreporter, self.outcome)
        return result

    def _bound_failure_sections(self, terminalreporter: Any) -> None:
        """Leave out pytest's section of each failure when there are more than
        :data:`MAX_FAILURE_SECTIONS` and ``--tb`` kept its default: thousands of them are no
        summary, and pytest pairs each with the run's every teardown report (quadratic)."""
        if self.is_worker or self.config.option.tbstyle != "auto":
            return
        stats = terminalreporter.stats  # pytest files a gate that failed at set-up as an error
        failed = len(stats.get("failed", ())) + len(stats.get("error", ()))
        if failed > MAX_FAILURE_SECTIONS:
            self.config.option.tbstyle = "no"
            self._say(
                f"{failed} gate instances failed: each is named below, without its section "
                "(the bundle's run.json and junit.xml hold every message; --tb=short prints them)"
            )

    def _write_summary(self, terminalreporter: Any, outcome: RunOutcome) -> None:
        from pytest_canarygate.summary import summary_lines
        from pytest_canarygate.summary import write_summary

        bundle = _display_path(self.bundle) if self.bundle else None
        lines = summary_lines(
            outcome,
            migration_id=self.migration_id,
            target=self.observation.target if self.observation else {},
            observed_at=self.observation.started_at if self.observation else None,
            bundle=bundle,
            signer_keyid=self.signer.public_key.keyid if self.signer else None,
            observation_problems=self.observation.problems() if self.observation else (),
            peers=self.observation.peers(self.pack.reported_pid) if self.observation else (),
            decision=outcome.decision,
            width=shutil.get_terminal_size((100, 24)).columns,
        )
        write_summary(terminalreporter.write_line, terminalreporter.write_sep, lines)

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        target = f"SIMULATED (scenario {self.scenario})" if self.scenario else "LIVE"
        where = self.settings.where if self.settings else "built-in defaults"
        return [f"canarygate: phase {self.phase}, target {target}, config {where}"]

    def stop_simulator(self) -> None:
        """Stop the simulated fleet, if this run started one."""
        if self.fleet is not None:
            self.fleet.stop()
            self.fleet = None


@contextlib.contextmanager
def _collector_paused() -> Generator[None, None, None]:
    """No cyclic garbage collection while the observation is taken or loaded: decoding
    answers of thousands of panes makes no cycles, yet would trigger full collections that
    rescan everything decoded so far. What was made is then frozen: the observation lives
    until the run ends, and the collections that collecting thousands of gates triggers
    need not rescan it either."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


_ENCODE_SORTED = json.JSONEncoder(sort_keys=True).encode


def _readable_json(value: Any, depth: int = 0) -> str:
    """JSON a person can read, written by json's C encoder (``indent`` would make it use the
    pure-Python one): one member per line for the top level, its values and any object or
    array whose members are all objects or arrays (a fleet's targets); compact beneath (a gate
    instance per line). Keys sorted, as ``sort_keys``."""
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, (list, tuple)):
        children = list(value)
    else:
        return _ENCODE_SORTED(value)
    if not children or (
        depth > 1 and not all(isinstance(c, (dict, list, tuple)) and c for c in children)
    ):
        return _ENCODE_SORTED(value)
    pad = "\n" + " " * (depth + 1)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return _ENCODE_SORTED(value)  # json's own key conversion and order
        body = f",{pad}".join(
            f"{_ENCODE_SORTED(k)}: {_readable_json(value[k], depth + 1)}" for k in sorted(value)
        )
        return f"{{{pad}{body}\n{' ' * depth}}}"
    body = f",{pad}".join(_readable_json(c, depth + 1) for c in children)
    return f"[{pad}{body}\n{' ' * depth}]"


def exit_status(outcome: RunOutcome, must_be_promotable: bool) -> pytest.ExitCode:
    """How a run that pytest itself found OK ends, given its outcome."""
    if not outcome.results:
        return pytest.ExitCode.NO_TESTS_COLLECTED
    if outcome.verdict in (RunVerdict.FAIL, RunVerdict.INCOMPLETE) or outcome.seal_error:
        return pytest.ExitCode.TESTS_FAILED
    if must_be_promotable and not outcome.promotable:
        return pytest.ExitCode.TESTS_FAILED
    return pytest.ExitCode.OK


def stray_test_message(nodeid: str) -> str:
    """Why a test without ``@gate`` fails a phase run."""
    return (
        f"{nodeid} is not a gate (no @gate): a --phase run judges only gate tests; "
        "move it out of the gate paths or mark it with @gate"
    )


def require_promotable(config: pytest.Config) -> bool:
    """Whether a run that is not promotable must exit 1 (option, else ini)."""
    option = config.getoption("canarygate_require_promotable")
    return (
        bool(option) if option is not None else bool(config.getini("canarygate_require_promotable"))
    )


def _target_in(nodeid: str, targets: list[str]) -> str | None:
    """The target a gate instance's id names (its parameters start with it), if any."""
    params = nodeid.partition("[")[2]
    return next((t for t in targets if params == f"{t}]" or params.startswith(f"{t}-")), None)


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _verdicts_without_traceback(item: pytest.Item) -> None:
    """Have ``item`` report a deliberate verdict raised by its test function without pytest's
    traceback, which would be discarded: reading and parsing the source of each frame is most
    of the cost of a run in which thousands of gates end UNOBSERVABLE. Any other exception
    (a bug) keeps it, for the gate's Allure result. (pytest formats a failure at set-up
    without asking the item: a verdict raised by a fixture still has one made.)"""
    made = item.repr_failure

    def repr_failure(excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, DELIBERATE):
            return excinfo.exconly()
        return made(excinfo) if style is None else made(excinfo, style)  # a Function takes one

    item.repr_failure = repr_failure  # type: ignore[method-assign]


def _judged_gate_id(item: pytest.Item, mark: pytest.Mark) -> object:
    """The gate a collected test instance judges: its ``@gate`` id, or for a test judging
    several, the one this instance was parametrized with."""
    ids = gate_ids(mark)
    if len(ids) > 1:
        callspec = getattr(item, "callspec", None)
        return callspec.params.get(GATE_ID_FIXTURE) if callspec is not None else None
    return ids[0] if ids else None


def _runbook_document(rootdir: Path, catalog: Catalog) -> Path | None:
    """The catalog's runbook document as a local file (relative to the rootdir, else to the
    catalog's folder), or None when it names none there (a URL, say)."""
    if not catalog.document or "://" in catalog.document:
        return None
    for base in (rootdir, catalog.path.parent):
        candidate = base / catalog.document
        if candidate.is_file() and not candidate.is_symlink():
            return candidate
    return None
