"""The house rules, checked on the source: small modules and functions, rooms that import only what
they may, and no import cycle between top-level packages."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from pipeline.settings import PROJECT_ROOT

OURS = ("app", "pages", "ui", "pipeline", "stack", "simulator", "bench")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 40
# Room of pipeline/ -> the rooms it may import (besides itself and the standard library).
PIPELINE_ROOMS = {
    "settings": set(), "waits": set(),
    "domain": {"settings", "waits"},
    "sinks": {"settings", "waits", "domain"},
    "services": {"settings", "waits", "domain", "sinks"},
    "spark": {"settings", "waits", "domain", "sinks"},
    "__main__": {"settings", "spark"}, "submit_job": {"__main__"},
}
THIRD_PARTY_BY_ROOM = {"domain": {"pyspark", "kafka", "pymongo", "bson", "streamlit", "pandas"}}


def source_files() -> Iterator[Path]:
    for path in sorted(PROJECT_ROOT.rglob("*.py")):
        relative = path.relative_to(PROJECT_ROOT)
        if relative.parts[0] in OURS or relative.name == "app.py":
            yield path


def imported_modules(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def top_level(path: Path) -> str:
    return path.relative_to(PROJECT_ROOT).parts[0].removesuffix(".py")


def pipeline_room(path: Path) -> str | None:
    parts = path.relative_to(PROJECT_ROOT).parts
    if parts[0] != "pipeline" or parts[-1] == "__init__.py" and len(parts) == 2:
        return None
    return parts[1].removesuffix(".py")


def test_modules_and_functions_are_small():
    too_big = []
    for path in source_files():
        source = path.read_text()
        if (lines := len(source.splitlines())) > MAX_MODULE_LINES:
            too_big.append(f"{path.relative_to(PROJECT_ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {node.name}(): {length} lines")
    assert too_big == []


def test_pipeline_rooms_import_only_what_they_may():
    wrong = []
    for path in source_files():
        room = pipeline_room(path)
        if room is None:
            continue
        for module in imported_modules(ast.parse(path.read_text())):
            parts = module.split(".")
            if parts[0] in OURS and parts[0] != "pipeline":
                wrong.append(f"{path.relative_to(PROJECT_ROOT)} imports {module}")
            elif parts[0] == "pipeline" and len(parts) > 1 and parts[1] != room and parts[1] in PIPELINE_ROOMS \
                    and parts[1] not in PIPELINE_ROOMS[room] or parts[0] in THIRD_PARTY_BY_ROOM.get(room, set()):
                wrong.append(f"{path.relative_to(PROJECT_ROOT)} ({room}) imports {module}")
    assert wrong == []


def test_no_import_cycle_between_top_level_packages():
    edges: dict[str, set[str]] = {name: set() for name in OURS}
    for path in source_files():
        for module in imported_modules(ast.parse(path.read_text())):
            target = module.split(".")[0]
            if target in OURS and target != top_level(path):
                edges[top_level(path)].add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in edges[start])

    cycles = sorted(f"{a} -> {b} -> … -> {a}" for a in OURS for b in edges[a] if reaches(b, a, {b}))
    assert cycles == [], edges
