"""The package reads as the pipeline: few top-level modules, no import cycle, stages meet at `__init__`.

Walks ``judge/`` with `ast` (nothing is imported), so the rules keep holding as code is added:
  * at most 12 modules directly in ``judge/`` (stages live in their own packages);
  * no import cycle between modules, counting imports inside functions too (a lazy import still
    ties two modules together);
  * a module outside a package imports only what the package's ``__init__`` names, never one of
    its modules;
  * every module starts with a docstring saying what it owns.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "judge"
MAX_TOP_LEVEL_MODULES = 12


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def resolve(target: str, known: dict[str, Path]) -> str | None:
    """The judge module an import names (``judge.a.b`` may be a module or a name in ``judge.a``)."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every judge module ``path`` imports, at any depth of the file."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out.update(t for n in names if n.startswith("judge") and (t := resolve(n, known)))
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in sorted(edges):
        if state.get(root):
            continue
        path, stack = [root], [iter(sorted(edges[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(edges.get(nxt, ()))))
    return None


def test_find_cycle_sees_a_cycle_and_its_absence() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"y"}, "y": {"y2"}, "y2": {"y"}}) == ["y", "y2", "y"]


def test_at_most_12_modules_directly_in_judge() -> None:
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert 0 < len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} modules in judge/: {top}"


def test_no_import_cycle() -> None:
    edges = graph()
    assert len(edges) > 40  # the walk found the package
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_stages_meet_only_at_package_init() -> None:
    known = modules()
    packages = {n for n, p in known.items() if p.name == "__init__.py" and n != "judge"}
    bad = []
    for name, targets in graph().items():
        for target in targets:
            # the innermost package that owns the target, when the target is one of its modules
            owner = next((pk for pk in sorted(packages, key=len, reverse=True)
                          if target.startswith(pk + ".")), None)
            if owner is None:
                continue
            top_owner = ".".join(owner.split(".")[:2])  # judge.generate for judge.generate.engines
            if not (name == top_owner or name.startswith(top_owner + ".")):
                bad.append(f"{name} imports {target} (use `from {top_owner} import ...`)")
    assert not bad, "\n".join(bad)


def test_every_module_says_what_it_owns() -> None:
    missing = [n for n, p in modules().items()
               if not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))]
    assert not missing, f"modules without a docstring: {missing}"
