"""The wings of `service/` import one way: api → live → runs → jobs → engines → media → the base.

A wing may import from itself, from a wing below it, and from the top-level modules (config,
database, errors, ...). `app`, `cli` and `context` are the composition root: they wire every wing
together, and `Context` is the bundle of services a handler receives, so any wing may name it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import service

WINGS = ["media", "engines", "jobs", "runs", "live", "client", "api"]
"""Lowest first: a wing may import only wings to its left (and the top level)."""

COMPOSITION_ROOT = {"app", "cli", "context", "__main__"}
ROOT = Path(service.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("service.")}


def wing_of(module: str) -> str | None:
    """The wing a dotted module belongs to, or None for the top level."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in WINGS else None


def test_every_module_lives_in_a_wing_or_is_one_of_the_few_at_the_top() -> None:
    top = {p.stem for p in ROOT.glob("*.py")}
    assert top == {
        "__init__",
        "__main__",
        "app",
        "auth",
        "cli",
        "config",
        "context",
        "cpu",
        "listener",
        "database",
        "errors",
        "inputs",
        "logs",
        "metrics",
        "outbound",
        "queries",
        "schema",
        "tokens",
    }


def test_wings_import_only_downwards() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(("service", *path.relative_to(ROOT).with_suffix("").parts))
        source_wing = wing_of(module)
        for target in imported_modules(path):
            target_wing = wing_of(target)
            if target.split(".")[1] in COMPOSITION_ROOT - {"context"}:
                if path.stem not in COMPOSITION_ROOT:
                    wrong.append(f"{module} imports the composition root {target}")
                continue
            if target_wing is None or target_wing == source_wing:
                continue
            if source_wing is None:
                if path.stem not in COMPOSITION_ROOT:
                    wrong.append(f"top-level {module} imports the wing {target}")
            elif WINGS.index(target_wing) > WINGS.index(source_wing):
                wrong.append(f"{module} ({source_wing}) imports {target} ({target_wing})")
    assert wrong == []
