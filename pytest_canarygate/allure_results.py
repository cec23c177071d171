"""The Allure results of a phase run: one ``<uuid>-result.json`` per gate instance, written by
the engine, with the gate's labels, its parameters, its status and one ``evidence`` attachment.

allure-pytest's own listener is not pointed at the bundle. It records every fixture of every
test: a container file per parametrized fixture, and, per test, a scan of each run-wide
fixture's list of children, which grows with the run. With the pure-Python JSON encoder on top,
at thousands of gate instances that cost more than judging them. The files written here follow
the same Allure result schema (allure-python-commons' model, the fields allure-pytest fills),
so Allure 2 and 3 render them as before; the set-up of the run-wide fixtures, which is not
evidence, is left out. The files are created by a helper process
(:mod:`pytest_canarygate.file_writer`) while the next gate is judged; :meth:`AllureResults.flush`
waits for them. Everything here is a no-op when allure-pytest is disabled
(``-p no:allure_pytest``): the bundle then records that it holds no gate results.
"""

from __future__ import annotations

import doctest
import hashlib
import json
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest
from allure_commons.utils import represent as _allure_represent

from pytest_canarygate.allure_evidence import ATTACHMENT_NAME
from pytest_canarygate.allure_evidence import evidence_text
from pytest_canarygate.bundle import NODEID_LABEL
from pytest_canarygate.file_writer import FileWriter
from pytest_canarygate.file_writer import PendingFile

if TYPE_CHECKING:
    from pytest_canarygate.catalog import Catalog
    from pytest_canarygate.catalog import GateSpec
    from pytest_canarygate.observation import GateEvidence

__all__ = ["AllureResults", "ItemResult"]

_PASSED, _FAILED, _BROKEN, _SKIPPED = "passed", "failed", "broken", "skipped"
#: Exceptions Allure counts as a failed check rather than a broken test (allure-pytest's rule).
_FAILURES: tuple[type[BaseException], ...] = (
    AssertionError,
    pytest.fail.Exception,
    doctest.DocTestFailure,
)
# ASCII only: untrusted text (a daemon's error message, captured output) may hold a lone
# surrogate, which has no UTF-8 form.
_ENCODE = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str).encode


def represent(value: object) -> str:
    """A parameter's value as allure-pytest shows it (strings quoted, the rest as repr)."""
    return str(_allure_represent(value))  # type: ignore[no-untyped-call]


def _md5(*parts: object) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for part in parts:
        digest.update((part if isinstance(part, str) else repr(part)).encode("utf-8"))
    return digest.hexdigest()


@dataclass
class ItemResult:
    """One test item's Allure result, filled in as its setup, call and teardown report."""

    start_ms: int = 0
    stop_ms: int = 0
    status: str | None = None
    details: dict[str, str] | None = None

    def update(
        self, report: pytest.TestReport, call: pytest.CallInfo[Any], trace: str | None = None
    ) -> None:
        """Fold one phase's report in, the way allure-pytest does: setup sets the status,
        call refines a pass, teardown only a failure; an exception that is not a failed check
        makes the result broken. ``trace``: the failure's trace, if not the report's text."""
        if report.when == "setup":
            self.start_ms = int(call.start * 1000)
        self.stop_ms = int(call.stop * 1000)
        status = _PASSED if report.passed else _SKIPPED if report.skipped else _FAILED
        details = None
        if call.excinfo is not None:
            details = {
                "message": call.excinfo.exconly(),
                "trace": report.longreprtext if trace is None else trace,
            }
            if status != _SKIPPED and not isinstance(call.excinfo.value, _FAILURES):
                status = _BROKEN
        if (
            report.when == "setup"
            or (report.when == "call" and self.status == _PASSED)
            or (status in (_FAILED, _BROKEN) and self.status == _PASSED)
        ):
            self.status, self.details = status, details


class AllureResults:
    """Writes the Allure result of each test item of a phase run into ``results_dir``."""

    def __init__(
        self,
        results_dir: Path,
        *,
        migration_id: str,
        phase: str,
        catalog: Catalog,
        runbook_url: str | None,
        attach_capture: bool = True,
    ) -> None:
        self.results_dir = results_dir
        self._folder = str(results_dir)
        self._folder_made = False
        self._files = FileWriter()
        self.migration_id = migration_id
        self.phase = phase
        self.catalog = catalog
        self.runbook_url = runbook_url
        self.attach_capture = attach_capture
        self._gate_parts: dict[str, tuple[list[dict[str, str]], list[dict[str, str]]]] = {}
        self._host = socket.gethostname()

    def _parts(self, gate: GateSpec) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        """The labels and links every instance of ``gate`` carries (made once per gate)."""
        parts = self._gate_parts.get(gate.id)
        if parts is None:
            item, phase = gate.item, self.phase
            story = f"{item.id}: {item.text}"
            labels = [
                ("epic", self.migration_id),
                ("feature", phase),
                ("story", story),
                ("tag", gate.id),
                ("severity", gate.severity),
                # Allure 2 shows neither custom labels nor stories by default; suites, tags it
                # does: the phase, stage and runbook item are both (not custom labels as well:
                # thousands of instances would each carry them a third time)
                ("parentSuite", phase),
                ("suite", gate.stage),
                ("subSuite", story),
                ("tag", f"item:{item.id}"),
                ("tag", f"phase:{phase}"),
                ("tag", f"stage:{gate.stage}"),
            ]
            link = (
                f"{self.runbook_url}#{item.anchor}" if self.runbook_url else self.catalog.link(item)
            )
            parts = (
                [{"name": name, "value": value} for name, value in labels],
                [{"type": "link", "url": link, "name": f"runbook {item.id}"}],
            )
            self._gate_parts[gate.id] = parts
        return parts

    def write(
        self,
        item: pytest.Item,
        result: ItemResult,
        *,
        gate: GateSpec | None,
        title: str | None,
        evidence: GateEvidence | None,
        waiver: dict[str, Any] | None = None,
        own_verdict: str | None = None,
        captured: dict[str, str] | None = None,
    ) -> Path:
        """Hand ``item``'s result and its attachments to the file writer; return the result
        file, there once :meth:`flush` returned (unless it named it as not written)."""
        if not self._folder_made:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            self._folder_made = True
        callspec = getattr(item, "callspec", None)
        params: dict[str, Any] = dict(callspec.params) if callspec is not None else {}
        parameters = [{"name": name, "value": represent(value)} for name, value in params.items()]
        labels: list[dict[str, str]] = []
        links: list[dict[str, str]] = []
        name = item.name
        description = None
        if gate is not None:
            labels, links = self._parts(gate)
            labels = list(labels)
            name = f"{gate.id}: {title}"
            description = f"{gate.item.id} ({gate.item.section}): {gate.item.text}"
            daemons = sorted({n.daemon for n in gate.needs if n.daemon != "evidence"})
            sources = sorted({n.method for n in gate.needs if n.daemon == "evidence"})
            if daemons:
                parameters.append({"name": "daemon", "value": represent(", ".join(daemons))})
            if sources:
                parameters.append({"name": "source", "value": represent(", ".join(sources))})
        if waiver is not None:
            waived_by = f"{waiver['by']} until {waiver['until']}"
            labels.append({"name": "tag", "value": "WAIVED"})
            parameters += [
                {"name": "waived by", "value": represent(waived_by)},
                {"name": "own verdict", "value": represent(own_verdict)},
                {"name": "waiver", "value": represent(waiver["text"])},
            ]
        # allure-pytest's names: the module as a dotted package, then any classes
        path, *classes = item.nodeid.split("[", 1)[0].split("::")[:-1] or [item.nodeid]
        package = ".".join(filter(None, path.rsplit(".", 1)[0].split("/")))
        in_classes = "".join(f".{cls}" for cls in classes)
        full_name = f"{package}{in_classes}#{getattr(item, 'originalname', item.name)}"
        labels += [
            {"name": NODEID_LABEL, "value": item.nodeid},
            {"name": "host", "value": self._host},
            {"name": "thread", "value": f"{os.getpid()}-{threading.current_thread().name}"},
            {"name": "package", "value": package},
        ]
        history = sorted(
            (p["name"], params[p["name"]] if p["name"] in params else p["value"])
            for p in parameters
        )
        attachments = []
        pending: list[PendingFile] = []
        if evidence is not None and (evidence.calls or evidence.readings or evidence.notes):
            body = evidence_text(evidence)
            attachments.append(
                self._attach(pending, ATTACHMENT_NAME, body, "application/json", "json")
            )
        for label, text in (captured or {}).items():
            if text and self.attach_capture:
                attachments.append(self._attach(pending, label, text, "text/plain", "txt"))
        uid = str(uuid.uuid4())
        document: dict[str, Any] = {
            "name": name,
            "status": result.status or _SKIPPED,
        }
        if result.details is not None:
            document["statusDetails"] = result.details
        if description is not None:
            document["description"] = description
        document.update(
            attachments=attachments,
            parameters=parameters,
            start=result.start_ms,
            stop=result.stop_ms,
            uuid=uid,
            historyId=_md5(full_name, *(value for _, value in history)),
            testCaseId=_md5(full_name),
            fullName=full_name,
            labels=labels,
            links=links,
            titlePath=[*path.split("/"), *classes],
        )
        # A result is written whole or not at all (a temporary name Allure does not read,
        # then renamed), after its attachments: a run stopped halfway leaves none truncated.
        result_name = f"{uid}-result.json"
        pending.append(
            PendingFile(
                os.path.join(self._folder, f".{result_name}.tmp"),
                _ENCODE(document).encode("ascii"),
                rename_to=os.path.join(self._folder, result_name),
            )
        )
        self._files.write(*pending)
        return self.results_dir / result_name

    def flush(self) -> list[str]:
        """Wait until every file :meth:`write` handed over is written; return those that could
        not be (``path: reason``). The bundle's results are read only after this."""
        return self._files.flush()

    def _attach(
        self, pending: list[PendingFile], name: str, body: str, media_type: str, extension: str
    ) -> dict[str, str]:
        source = f"{uuid.uuid4()}-attachment.{extension}"
        # Written in place: only the result written after it names it, so an attachment a
        # stopped run left truncated is named by no result.
        data = body.encode("utf-8", "backslashreplace")
        pending.append(PendingFile(os.path.join(self._folder, source), data))
        return {"name": name, "source": source, "type": media_type}
