"""Structure figures of the package (issue 12's before/after): where engines are named, how
often the engine/device flags are defined, import cycles, and ``self.`` attributes shared
between the classes a class is assembled from (mixins).

    python scripts/structure_report.py [PACKAGE_DIR] [--json]

Static (ast) reading only; nothing is imported.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

ENGINE_NAMES = ("fomm", "landmarks", "liveportrait", "remote")


def modules(root: Path) -> dict[str, ast.Module]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def _data_keys(tree: ast.Module) -> set[int]:
    """ids of string constants used as data keys: dict-literal keys, subscripts (``d["k"]``),
    ``.get("k")``/``.pop("k")`` and ``"k" in d``. A field named like an engine ("landmarks":
    face points) is not the engine."""
    keys: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys.update(id(k) for k in node.keys if k is not None)
        elif isinstance(node, ast.Subscript):
            keys.add(id(node.slice))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("get", "pop") and node.args:
            keys.add(id(node.args[0]))
        elif isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            keys.add(id(node.left))
    return keys


def engine_name_places(mods: dict[str, ast.Module]) -> dict[str, list[str]]:
    """Modules outside an engine's own folder that spell an engine's name as a string literal
    (not counting data keys, see ``_data_keys``)."""
    found: dict[str, list[str]] = defaultdict(list)
    for name, tree in mods.items():
        keys = _data_keys(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ENGINE_NAMES:
                if id(node) in keys:
                    continue
                # An engine's own folders (its engine and its models) may name it.
                own = any(f".{layer}.{node.value}" in name + "." for layer in ("engines", "models"))
                if not own and name not in found[node.value]:
                    found[node.value].append(name)
    return dict(found)


def flag_definitions(mods: dict[str, ast.Module], flags=("--engine", "--device")) -> dict[str, list[str]]:
    """Modules whose code calls add_argument with one of ``flags``."""
    found: dict[str, list[str]] = defaultdict(list)
    for name, tree in mods.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and arg.value in flags:
                        found[arg.value].append(name)
    return dict(found)


def _imports(tree: ast.Module, deferred: bool):
    """Import statements run when the module loads (``deferred``: also those inside functions)."""
    if deferred:
        yield from (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom))
        return
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If | ast.Try | ast.With):  # module-level blocks still run at import
            todo.extend(ast.iter_child_nodes(node))


def import_graph(mods: dict[str, ast.Module], package: str, deferred: bool = False) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, tree in mods.items():
        for node in _imports(tree, deferred):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                if t.startswith(package):
                    while t and t not in mods:
                        t = t.rpartition(".")[0]
                    # A module's own parent packages load with it anyway: not a dependency.
                    if t and t != name and not name.startswith(t + "."):
                        graph[name].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _self_attrs(cls: ast.ClassDef) -> set[str]:
    return {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name) and n.value.id == "self"}


def shared_self_attributes(mods: dict[str, ast.Module]) -> dict[str, dict[str, object]]:
    """For each class built from two or more of the package's own classes (mixins): the
    ``self.`` attributes that more than one of those class bodies use."""
    classes: dict[str, ast.ClassDef] = {}
    for tree in mods.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = node
    out = {}
    for name, cls in classes.items():
        bases = [b.id for b in cls.bases if isinstance(b, ast.Name) and b.id in classes]
        if len(bases) < 2:
            continue
        users: dict[str, set[str]] = defaultdict(set)
        for part in [name, *bases]:
            for attr in _self_attrs(classes[part]):
                users[attr].add(part)
        methods = {f.name for part in [name, *bases] for f in classes[part].body
                   if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)}
        shared = sorted(a for a, parts in users.items() if len(parts) > 1 and a not in methods)
        out[name] = {"parts": len(bases) + 1, "shared_attributes": len(shared), "names": shared}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("package", nargs="?", default=str(Path(__file__).resolve().parents[1] / "avatarify_app"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    root = Path(args.package)
    mods = modules(root)
    report = {
        "modules": len(mods),
        "engine_name_places": engine_name_places(mods),
        "engine_flag_definitions": flag_definitions(mods),
        "import_cycles": cycles(import_graph(mods, root.name)),
        "import_cycles_with_deferred": cycles(import_graph(mods, root.name, deferred=True)),
        "mixin_classes": shared_self_attributes(mods),
    }
    if args.json:
        print(json.dumps(report, indent=1, sort_keys=True))
        return 0
    print(f"{root}: {report['modules']} modules")
    places = {m for ms in report["engine_name_places"].values() for m in ms}
    print(f"modules outside an engine's folder that spell an engine name: {len(places)}")
    for engine, ms in sorted(report["engine_name_places"].items()):
        print(f"  {engine}: {', '.join(ms)}")
    for flag, ms in sorted(report["engine_flag_definitions"].items()):
        print(f"{flag} defined {len(ms)} time(s): {', '.join(ms)}")
    print(f"import cycles at import time: {len(report['import_cycles'])}")
    for c in report["import_cycles"]:
        print("  " + " <-> ".join(c))
    print(f"import cycles counting imports inside functions: {len(report['import_cycles_with_deferred'])}")
    for c in report["import_cycles_with_deferred"]:
        print("  " + " <-> ".join(c))
    total = sum(v["shared_attributes"] for v in report["mixin_classes"].values())
    print(f"self. attributes shared across the parts of mixin classes: {total}")
    for name, v in sorted(report["mixin_classes"].items()):
        print(f"  {name} ({v['parts']} classes): {v['shared_attributes']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
