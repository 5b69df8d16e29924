"""The README's configuration reference lists every key of the shipped file, as generated."""

from aura_dashboard.config.reference import END, START, reference_table
from tests.conftest import ROOT


def test_readme_reference_is_current():
    text = (ROOT / "README.md").read_text()
    section = text[text.index(START): text.index(END) + len(END)]
    assert section == reference_table(), "regenerate: python -m aura_dashboard.config.reference --write README.md"


def test_reference_names_variables_and_defaults():
    table = reference_table()
    assert "| `dashboard.port` | `DASHBOARD_PORT` | `8080` |" in table
    assert "| `websocket.path` |  | `/ws` |" in table
