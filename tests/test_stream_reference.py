"""docs/protocol.md's panel and stream tables are generated from the code's tables."""

from aura_dashboard.stream_reference import SECTIONS
from tests.conftest import ROOT


def test_protocol_stream_sections_are_current():
    text = (ROOT / "docs" / "protocol.md").read_text()
    for start, end, make in SECTIONS:
        section = text[text.index(start): text.index(end) + len(end)]
        assert section == make(), "regenerate: python -m aura_dashboard.stream_reference --write docs/protocol.md"
