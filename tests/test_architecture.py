"""The layers of the package: a module may import from its own layer's group or from a lower
layer, never from a higher one. The order is written once, here (and drawn in
docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aura_dashboard"

# Lowest first. Modules of one group may import each other; groups of one layer may not.
LAYERS: list[dict[str, set[str]]] = [
    {"base": {"__init__", "errors", "signals", "tasks", "stats", "health", "outbound"}},
    {"config": {"config"}},
    {"contract": {"contract"}, "logs": {"logs"}},
    {"collectors": {"collectors"}, "security": {"security"}},
    {"realtime": {"realtime"}, "history": {"history"}},
    {"panels": {"panels"}},
    {"namespaces": {"namespaces"}},
    {"web": {"web"}},
    {"app": {"app", "cli", "__main__", "stream_reference", "preflight"}},
]


def place(module: str) -> tuple[int, str]:
    """(layer, group) of a module named relative to the package, e.g. `realtime.hub`."""
    head = module.split(".")[0]
    for index, groups in enumerate(LAYERS):
        for group, heads in groups.items():
            if head in heads:
                return index, group
    raise AssertionError(f"aura_dashboard.{module} is in no layer: add it to LAYERS and the picture")


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def imports_of(module: str, path: Path) -> list[str]:
    """Every aura_dashboard module `module` imports, relative to the package."""
    is_package = path.name == "__init__.py"
    here = module.split(".") if is_package else module.split(".")[:-1]
    if module == "__init__":
        here = []
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                if not target:  # `from . import x` at the top: module x, or a name of the package
                    found += [alias.name if (PACKAGE / alias.name).is_dir() or (PACKAGE / f"{alias.name}.py").is_file()
                              else "__init__" for alias in node.names]
                    continue
                found.append(target)
            elif node.module and node.module.startswith("aura_dashboard"):
                found.append(node.module.removeprefix("aura_dashboard").lstrip(".") or "__init__")
        elif isinstance(node, ast.Import):
            found += [a.name.removeprefix("aura_dashboard.") for a in node.names if a.name.startswith("aura_dashboard.")]
    return [target or "__init__" for target in found]


@pytest.mark.parametrize("module,path", modules(), ids=[m for m, _ in modules()])
def test_no_module_imports_a_higher_layer(module: str, path: Path):
    layer, group = place(module)
    for target in imports_of(module, path):
        target_layer, target_group = place(target)
        assert target_layer < layer or (target_layer == layer and target_group == group), (
            f"aura_dashboard.{module} ({group}) imports aura_dashboard.{target} ({target_group}), "
            f"which is not below it")


def test_the_check_catches_an_upward_import(tmp_path):
    fake = tmp_path / "hub.py"
    fake.write_text("from ..web.keys import HUB\n")
    (target,) = imports_of("realtime.hub", fake)
    assert place(target)[0] > place("realtime.hub")[0]
