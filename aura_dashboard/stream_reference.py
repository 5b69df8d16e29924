"""docs/protocol.md's stream section, generated from the stream table (`app.STREAMS`) and the
panel table (`namespaces.PANELS`).

`python -m aura_dashboard.stream_reference` prints it (`--write docs/protocol.md` updates it);
a test keeps the document in step with the code.
"""

from __future__ import annotations

from .app import STREAMS
from .contract import UNITS, StreamContract
from .namespaces import PANELS
from .web.metrics import series_metrics

PANELS_START, PANELS_END = "<!-- panel-reference:start -->", "<!-- panel-reference:end -->"
START, END = "<!-- stream-reference:start -->", "<!-- stream-reference:end -->"


def _when(contract: StreamContract) -> str:
    parts = [f"`{key}`" for key in contract.switches]
    if contract.feature:
        parts.append(f"`features.{contract.feature}`")
    return " and ".join(parts) if parts else "always"


def _every(contract: StreamContract) -> str:
    if not contract.interval:
        return "when something happens"
    keys = ", ".join(f"`{key}`" for key in contract.interval)
    return f"every {keys}" if len(contract.interval) == 1 else f"at the shortest of {keys}"


def panel_reference() -> str:
    lines = [PANELS_START, "", "| namespace | panel config | feature flag | streams |", "|---|---|---|---|"]
    for panel in PANELS:
        streams = ", ".join(f"`{c.name}`" for c in STREAMS if c.namespace == panel.namespace)
        lines.append(f"| `{panel.namespace}` | panels.{panel.config_section} | features.{panel.feature} | {streams} |")
    lines += ["", PANELS_END]
    return "\n".join(lines)


def reference() -> str:
    lines = [START]
    for contract in STREAMS:
        lines += ["", f"### `{contract.name}` ({contract.namespace})", "", contract.summary, "",
                  f"- sampled {'once for the cluster (by the lease holder)' if contract.shared else 'by every host'}"
                  f", {_every(contract)}; on while {_when(contract)}.",
                  "", "| field | unit | meaning | series: /metrics name {labels} |", "|---|---|---|---|"]
        metrics = {m.field.path: m for m in series_metrics([contract])}
        for field in contract.fields:
            metric = metrics.get(field.path)
            exported = f"`{metric.name}` {{{', '.join(metric.labels)}}}" if metric else ""
            lines.append(f"| `{field.path}` | {field.unit} | {field.meaning} | {exported} |")
    lines += ["", "Units: " + "; ".join(f"`{unit}` {meaning}" for unit, meaning in UNITS.items()) + ".",
              "", END]
    return "\n".join(lines)


SECTIONS = ((PANELS_START, PANELS_END, panel_reference), (START, END, reference))


def rewrite(path: str) -> None:
    """Replace each generated section between its markers in a file with the current one."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for start_mark, end_mark, make in SECTIONS:
        start, end = text.index(start_mark), text.index(end_mark) + len(end_mark)
        text = text[:start] + make() + text[end:]
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:
        rewrite(sys.argv[2] if len(sys.argv) > 2 else "docs/protocol.md")
    else:
        print(panel_reference(), reference(), sep="\n\n")
