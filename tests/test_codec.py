"""Provider evidence survives the trip to xdist workers as the same typed records."""

from __future__ import annotations

import json
from datetime import datetime
from datetime import timezone
from types import MappingProxyType

from pytest_canarygate.agtmux.pack import decode
from pytest_canarygate.agtmux.providers import Evidence
from pytest_canarygate.agtmux.providers import Source
from pytest_canarygate.agtmux.records import AlertEntry
from pytest_canarygate.agtmux.records import Severity
from pytest_canarygate.codec import encode


def test_records_datetimes_and_enums_round_trip_through_json() -> None:
    entry = AlertEntry(
        alert_id="alert-1",
        severity=Severity.ESCALATE,
        source="supervisor",
        message="hold-down",
        created_at_ms=1_795_650_900_000,
        resolved_at_ms=None,
        resolve_policy="AutoResolve",
    )
    evidence = Evidence(
        (entry,),
        Source("http://127.0.0.1:1/ops", "alert_ledger"),
        {"entries": []},
        covers_from=datetime(2026, 11, 1, tzinfo=timezone.utc),
        covers_to=datetime(2026, 11, 26, tzinfo=timezone.utc),
    )
    back = decode(json.loads(json.dumps(encode(evidence))))
    assert back == evidence
    assert back.records[0].severity is Severity.ESCALATE


def test_read_only_mappings_encode_like_dicts() -> None:
    assert encode(MappingProxyType({"a": 1})) == {"a": 1}
    json.dumps(encode({"values": MappingProxyType({"p95": 3224})}))
