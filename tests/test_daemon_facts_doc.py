"""Every "daemon facts N.M" citation in the code and docs lands on a section of
docs/daemon-facts.md with that number."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FACTS = REPO / "docs" / "daemon-facts.md"
SCANNED = ("pytest_canarygate", "gates", "tests", "docs")
SUFFIXES = {".py", ".md", ".toml"}

_NUMBER = r"\d+(?:\.\d+)?"
# "daemon facts 4.5", "daemon facts 2.3, 2.9, 9", "daemon facts 5.4 and 6.5",
# "daemon facts sections 1 and 2", "daemon facts sections 4-11" (may wrap onto the next line)
_CITATION = re.compile(
    rf"daemon\s+facts\s+(?:sections?\s+)?({_NUMBER}(?:\s*(?:,|and|-)\s*{_NUMBER})*)"
)
_HEADING = re.compile(rf"^#{{2,3}} ({_NUMBER})[ .]", re.MULTILINE)


def _cited_sections(text: str) -> set[str]:
    cited: set[str] = set()
    for match in _CITATION.finditer(text):
        group = match.group(1)
        for low, high in re.findall(r"(\d+)\s*-\s*(\d+)", group):
            cited.update(str(n) for n in range(int(low), int(high) + 1))
        cited.update(n.rstrip(".") for n in re.findall(_NUMBER, group))
    return cited


def _citations() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*")):
            if path.suffix not in SUFFIXES or not path.is_file() or path == FACTS:
                continue
            if path == Path(__file__).resolve():
                continue
            sections = _cited_sections(path.read_text(encoding="utf-8", errors="replace"))
            if sections:
                found[str(path.relative_to(REPO))] = sections
    return found


def test_the_citation_parser_reads_every_form() -> None:
    assert _cited_sections("(daemon facts 2.3, 2.9, 9)") == {"2.3", "2.9", "9"}
    assert _cited_sections("daemon facts sections 4-11 and") == {str(n) for n in range(4, 12)}
    assert _cited_sections("daemon\n  facts sections 1 and 2") == {"1", "2"}
    assert _cited_sections("(daemon facts 5.4, 6.5, 8.3); every") == {"5.4", "6.5", "8.3"}
    assert _cited_sections("daemon facts 13).") == {"13"}


def test_every_cited_section_exists() -> None:
    headings = set(_HEADING.findall(FACTS.read_text(encoding="utf-8")))
    citations = _citations()
    assert len(citations) > 10, "the scan found almost no citations: is the pattern broken?"
    missing = {
        where: sorted(sections - headings)
        for where, sections in citations.items()
        if sections - headings
    }
    assert not missing, f"cited but not in {FACTS.name}: {missing}"


@pytest.mark.parametrize(
    "word",
    ["shared/", "/" + "work/", "/home/", "DAEMON-" + "FACTS"],  # split: never in a tree
)
def test_the_facts_name_no_machine_path_or_source_file(word: str) -> None:
    assert word not in FACTS.read_text(encoding="utf-8")
