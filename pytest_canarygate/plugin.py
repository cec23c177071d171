"""pytest glue: options, ini keys, markers, fixtures and the hand-off to :class:`GateSession`.

The plugin does nothing unless ``--phase`` is given (or an xdist worker is handed a run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_canarygate.catalog import STAGES
from pytest_canarygate.config import CanarygateConfig
from pytest_canarygate.custody import CustodyView
from pytest_canarygate.gate import GATE_ID_FIXTURE
from pytest_canarygate.gate import GATE_MARK
from pytest_canarygate.observation import ObservedView
from pytest_canarygate.session import SESSION_KEY
from pytest_canarygate.session import TARGET_FIXTURE
from pytest_canarygate.session import WORKER_INPUT_KEY
from pytest_canarygate.session import WRITE_PROBLEMS_KEY
from pytest_canarygate.session import GateSession
from pytest_canarygate.verdicts import Unobservable


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_canarygate import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("canarygate", "gate a phased daemon migration")
    group.addoption(
        "--phase",
        "--canarygate-phase",
        dest="canarygate_phase",
        metavar="PHASE",
        help="Judge the gates of this runbook phase (the pack's catalog lists them, "
        "e.g. alpha, canary, gradual, cutover, rollback)",
    )
    group.addoption(
        "--canarygate-stage",
        dest="canarygate_stage",
        choices=STAGES,
        metavar="STAGE",
        help="Only the gates of one stage: entry, monitor or exit (the run is then partial, "
        "never promotable); rehearsal, with --phase=rollback, is the rollback dry-run, which "
        "a plain run leaves out",
    )
    group.addoption(
        "--canarygate-config",
        dest="canarygate_config",
        metavar="PATH",
        help="Config file (default: ini canarygate_config, env CANARYGATE_CONFIG, "
        "then canarygate.toml at the rootdir)",
    )
    group.addoption(
        "--canarygate-sim",
        dest="canarygate_sim",
        metavar="SCENARIO",
        help="Start the pack's simulator with this scenario and judge it instead of the "
        "configured daemons (see `canarygate sim --list`)",
    )
    group.addoption(
        "--canarygate-key",
        dest="canarygate_key",
        metavar="PATH",
        help="Ed25519 private key (mode 0600) that signs the evidence bundle "
        "(env CANARYGATE_SIGNING_KEY); without one a live run is NOT SIGNED - NOT PROMOTABLE",
    )
    group.addoption(
        "--canarygate-require-promotable",
        dest="canarygate_require_promotable",
        action="store_true",
        default=None,
        help="Exit 1 unless promotion may go ahead (complete, live, signed, every gate PASS or "
        "WAIVED, no runbook item left ungated): for CI required checks "
        "(ini canarygate_require_promotable)",
    )
    group.addoption(
        "--canarygate-reports",
        dest="canarygate_reports",
        metavar="DIR",
        help="Where run folders go (default: ini canarygate_reports, then reports/ at the rootdir)",
    )
    parser.addini(
        "canarygate_config",
        "canarygate config file, relative to the ini file (default: canarygate.toml)",
        type="paths",
    )
    parser.addini(
        "canarygate_reports",
        "Folder for canarygate run folders, relative to the ini file (default: reports)",
        type="paths",
    )
    parser.addini(
        "canarygate_require_promotable",
        "Exit 1 unless promotion may go ahead (as --canarygate-require-promotable)",
        type="bool",
        default=False,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{GATE_MARK}(*gate_ids): this test is the gate(s) `gate_ids` of the catalog (use @gate)",
    )
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    phase = config.getoption("canarygate_phase")
    if workerinput is not None:
        run_dir = workerinput.get(WORKER_INPUT_KEY)
        if not run_dir or not phase:
            return
        session = GateSession.for_worker(config, phase, Path(run_dir))
    elif phase:
        session = GateSession.for_controller(config, phase)
    else:
        return
    _keep_allure_listener_off(config)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "canarygate-session")
    if config.pluginmanager.hasplugin("xdist") and workerinput is None:
        config.pluginmanager.register(XdistHooks(session), "canarygate-xdist")
    config.add_cleanup(session.stop_simulator)


def _keep_allure_listener_off(config: pytest.Config) -> None:
    # The session writes each gate's Allure result into the bundle itself (allure_results.py);
    # allure-pytest's own listener, which its pytest_configure registers after ours (tryfirst)
    # only when it has a results folder, stays off, so nothing is written twice.
    if hasattr(config.option, "allure_report_dir"):
        config.option.allure_report_dir = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SESSION_KEY in config.stash:
        return
    gates = [item.nodeid for item in items if item.get_closest_marker(GATE_MARK)]
    if gates:
        raise pytest.UsageError(
            f"{len(gates)} gate(s) collected (e.g. {gates[0]}) but no phase given; "
            "run with --phase=PHASE"
        )


class XdistHooks:
    """Hooks that exist only when pytest-xdist is installed (registered on the controller)."""

    def __init__(self, session: GateSession) -> None:
        self.session = session

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKER_INPUT_KEY] = str(self.session.run_dir)

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        # Workers filter by phase before reporting ids, so these are the gates due to run.
        self.session.expected.update(ids)

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        self.session.take_write_problems(output.get(WRITE_PROBLEMS_KEY))


def _session(config: pytest.Config) -> GateSession:
    session = config.stash.get(SESSION_KEY, None)
    if session is None or session.observation is None:
        raise Unobservable("no observation in this run: gates run only with --phase")
    return session


# The run-wide fixtures are session-scoped: their values do not depend on the gate, and a
# function-scoped fixture costs a setup, a teardown and an Allure container file per gate.
# They take ``pytestconfig``, not ``request``: pytest makes a new definition of ``request``
# each time a fixture asking for it is looked up, for every gate, cached or not.


@pytest.fixture(scope="session")
def canarygate_observed(pytestconfig: pytest.Config) -> ObservedView:
    """The run's frozen observation of the live daemons; what a gate reads is its evidence
    (recorded into the evidence log of the gate running at the time)."""
    session = _session(pytestconfig)
    assert session.observation is not None
    view = ObservedView(
        session.current_observation or session.observation,
        session.current_evidence,
        session.pack.decode,
        session.pack.timestamps,
    )
    # In a [[targets]] run the session points this one view at each gate's own target.
    session.shared_views.append(view)
    return view


@pytest.fixture(name=TARGET_FIXTURE)
def canarygate_target(request: pytest.FixtureRequest) -> str:
    """The ``[[targets]]`` entry this gate instance judges (a run with targets only)."""
    target = getattr(request, "param", None)
    if not isinstance(target, str):
        raise Unobservable("no target given to this gate: the config names no [[targets]]")
    return target


@pytest.fixture(scope="session")
def canarygate_settings(pytestconfig: pytest.Config) -> CanarygateConfig:
    """The run's validated config: endpoints, timeouts, evidence URIs and the pack's settings
    (``pack_settings``)."""
    settings = _session(pytestconfig).settings
    if settings is None:
        raise Unobservable("this run has no validated config")
    return settings


@pytest.fixture(scope="session")
def canarygate_custody(pytestconfig: pytest.Config) -> CustodyView:
    """The chain of custody the run found before any gate ran: the earlier phase's bundle it
    relies on, and the migration's valid sign-offs, waivers and user reports."""
    session = _session(pytestconfig)
    assert session.observation is not None
    return CustodyView(session.custody, session.observation.now)


@pytest.fixture(name=GATE_ID_FIXTURE)
def canarygate_gate_id(request: pytest.FixtureRequest) -> str:
    """The gate this instance of a test judging several gates (``@gate("a", "b")``) judges."""
    gate_id = getattr(request, "param", None)
    if not isinstance(gate_id, str):
        raise Unobservable("no gate given to this test: gates run only with --phase")
    return gate_id
