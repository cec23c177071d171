"""The kvstore runbook's gates: each judges one catalog entry from the run's observation."""

from __future__ import annotations

from pytest_canarygate import GateFailed
from pytest_canarygate import ObservedView
from pytest_canarygate import Unobservable
from pytest_canarygate import gate


def _version(observed: ObservedView, daemon: str) -> tuple[int, ...]:
    info = observed.daemon(daemon).result("kv.info")
    text = info.get("version") if isinstance(info, dict) else None
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError:
        raise Unobservable(f"{daemon} kv.info: version {text!r} is not dotted numbers") from None


def _keys(observed: ObservedView, daemon: str, namespace: str) -> dict[str, object]:
    keys = observed.daemon(daemon).result("kv.keys")
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise Unobservable(f"{daemon} kv.keys: not a list of objects")
    found = [k for k in keys if k.get("namespace") == namespace]
    ids = [k.get("key") for k in found]
    if len(set(ids)) != len(ids):
        raise Unobservable(f"{daemon} kv.keys: a key of {namespace} appears twice")
    return {str(k.get("key")): k.get("value") for k in found}


@gate("kv.newer-version")
def test_new_daemon_is_newer(canarygate_observed: ObservedView) -> None:
    old, new = _version(canarygate_observed, "old"), _version(canarygate_observed, "new")
    if new <= old:
        raise GateFailed(f"new daemon version {new} is not newer than old {old}")


@gate("kv.namespace-parity")
def test_namespace_parity(canarygate_observed: ObservedView, kv_namespace: str) -> None:
    old = _keys(canarygate_observed, "old", kv_namespace)
    new = _keys(canarygate_observed, "new", kv_namespace)
    differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    canarygate_observed.note("keys that differ", differ)
    if differ:
        raise GateFailed(f"namespace {kv_namespace}: {len(differ)} key(s) differ: {differ[:5]}")
