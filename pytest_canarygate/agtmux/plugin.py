"""The agtmux pack's pytest plugin (entry point ``canarygate_agtmux``): it registers the pack,
builds its providers and offers the fixtures its gates take.

Every hook is optional, so the pack loads quietly where the engine is disabled
(``-p no:canarygate``); its fixtures then report UNOBSERVABLE.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_canarygate.agtmux.pack import PACK
from pytest_canarygate.agtmux.pack import TMUX_SESSION_FIXTURE
from pytest_canarygate.agtmux.settings import AgtmuxSettings
from pytest_canarygate.agtmux.settings import ParityConfig
from pytest_canarygate.config import CanarygateConfig
from pytest_canarygate.gate import parameter_value
from pytest_canarygate.pack import Pack
from pytest_canarygate.provider import Timeouts
from pytest_canarygate.verdicts import Unobservable


@pytest.hookimpl(optionalhook=True)
def pytest_canarygate_packs(config: pytest.Config) -> list[Pack]:
    return [PACK]


@pytest.hookimpl(optionalhook=True, trylast=True)
def pytest_canarygate_make_provider(
    config: pytest.Config, kind: str, uri: str, timeouts: Timeouts
) -> Any:
    """The pack's providers, chosen by URI scheme (``unix://``, ``file://``, ``http(s)://``)."""
    from pytest_canarygate.agtmux.providers import INTERFACES
    from pytest_canarygate.agtmux.providers import make_provider

    if kind not in INTERFACES:
        return None
    return make_provider(kind, uri, timeouts=timeouts)


@pytest.fixture(name=TMUX_SESSION_FIXTURE)
def agtmux_tmux_session(request: pytest.FixtureRequest) -> str:
    """The active tmux session this gate instance judges (one instance per session)."""
    return parameter_value(request)


@pytest.fixture(scope="session")
def agtmux_settings(canarygate_settings: CanarygateConfig) -> AgtmuxSettings:
    """The run's agtmux windows, thresholds, expected sources and parity fields."""
    found = canarygate_settings.pack_settings
    if not isinstance(found, AgtmuxSettings):
        raise Unobservable(f"this run's pack is not agtmux ({canarygate_settings.where})")
    return found


@pytest.fixture(scope="session")
def agtmux_pane_parity(agtmux_settings: AgtmuxSettings) -> ParityConfig:
    """Which pane fields the parity gates compare (config ``[parity.panes]``)."""
    return agtmux_settings.pane_parity


@pytest.fixture(scope="session")
def agtmux_session_parity(agtmux_settings: AgtmuxSettings) -> ParityConfig:
    """Which agent-session fields the parity gates compare (config ``[parity.sessions]``)."""
    return agtmux_settings.session_parity
