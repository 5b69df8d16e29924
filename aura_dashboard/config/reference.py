"""The configuration reference table of the README, generated from the shipped YAML.

`python -m aura_dashboard.config.reference` prints it (`--write README.md` updates it); a test keeps the README in step.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from .loader import shipped_config_text

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


def _rows(node: Any, path: str = ""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _rows(value, f"{path}.{key}" if path else str(key))
        return
    yield path, node


def _cell(value: Any) -> str:
    if isinstance(value, str):
        variables = _REFERENCE.findall(value)
        shown = _REFERENCE.sub(lambda m: m.group(2) or "", value)
        return f"`{shown}`" if shown else "(empty)", ", ".join(f"`{name}`" for name, _ in variables)
    return f"`{json.dumps(value)}`", ""


def variables_by_key() -> dict[str, list[str]]:
    """Each key of the shipped file that reads variables, with their names."""
    out = {}
    for key, value in _rows(yaml.safe_load(shipped_config_text())):
        names = _REFERENCE.findall(value) if isinstance(value, str) else []
        if names:
            out[key] = [name for name, _ in names]
    return out


def reference_table() -> str:
    lines = [START, "", "| key | variable | default |", "|---|---|---|"]
    for key, value in _rows(yaml.safe_load(shipped_config_text())):
        shown, variables = _cell(value)
        if isinstance(value, list):
            items = [_cell(item) for item in value]
            shown = "`[" + ", ".join(cell.strip("`") for cell, _ in items) + "]`"
            variables = ", ".join(v for _, v in items if v)
        lines.append(f"| `{key}` | {variables} | {shown} |")
    lines += ["", END]
    return "\n".join(lines)


def rewrite(path: str) -> None:
    """Replace the table between the markers of a file (the README) with the current one."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.index(START), text.index(END) + len(END)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text[:start] + reference_table() + text[end:])


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:
        rewrite(sys.argv[2] if len(sys.argv) > 2 else "README.md")
    else:
        print(reference_table())
