"""The window is composed, not mixed in: no ``self.`` attribute is shared across classes.

``shared_attributes(folder)`` reads the classes of a package folder (``ast``, nothing is
imported) and returns the names that two or more of them touch on one object: an attribute
or method defined (assigned to ``self`` or a ``def``) in one class of an inheritance chain
and used (``self.name``) in another class of the same chain. Mixins share state this way;
composed parts own theirs. Run as a script on any folder to count:
``python tests/gui/test_structure.py avatarify_app/gui``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

GUI = Path(__file__).resolve().parents[2] / "avatarify_app" / "gui"


def _classes(folder: Path) -> dict[str, dict]:
    classes: dict[str, dict] = {}
    for path in sorted(folder.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.ClassDef):
                continue
            used: set[str] = set()
            data: set[str] = set()
            methods = {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            for item in node.body:
                targets = item.targets if isinstance(item, ast.Assign) else \
                    [item.target] if isinstance(item, ast.AnnAssign) else []
                data |= {t.id for t in targets if isinstance(t, ast.Name)}
            for sub in ast.walk(node):
                if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "self":
                    used.add(sub.attr)
                    if isinstance(sub.ctx, ast.Store):
                        data.add(sub.attr)
            bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
            classes[node.name] = {"bases": bases, "used": used, "data": data, "defined": data | methods}
    return classes


def shared_attributes(folder: Path) -> tuple[set[str], set[str]]:
    """(names shared across classes of one object, the data attributes among them)."""
    classes = _classes(folder)

    def chain(name: str) -> list[str]:
        out = [name]
        for base in classes[name]["bases"]:
            if base in classes:
                out += [c for c in chain(base) if c not in out]
        return out

    own = set().union(*(c["defined"] for c in classes.values()))
    data = set().union(*(c["data"] for c in classes.values()))
    shared: set[str] = set()
    for name in classes:
        members = chain(name)
        if len(members) < 2:
            continue
        for attr in own:
            if sum(attr in classes[c]["used"] or attr in classes[c]["defined"] for c in members) >= 2:
                shared.add(attr)
    return shared, shared & data


def test_no_attribute_is_shared_across_classes_of_one_object():
    shared, shared_data = shared_attributes(GUI)
    assert not shared, f"shared through self: {sorted(shared)}"
    assert not shared_data


def private_reads(folder: Path) -> list[str]:
    """``obj._name`` where ``obj`` is not ``self`` or ``cls``: one part reading another's private field."""
    found = []
    for path in sorted(folder.glob("*.py")):
        for sub in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(sub, ast.Attribute) and sub.attr.startswith("_") and not sub.attr.startswith("__"):
                owner = sub.value.id if isinstance(sub.value, ast.Name) else ""
                if owner not in ("self", "cls"):
                    found.append(f"{path.name}:{sub.lineno} {ast.unparse(sub)}")
    return found


def test_no_part_reads_another_parts_private_fields():
    assert private_reads(GUI) == []


def test_the_count_sees_mixins(tmp_path):
    """The measure itself: two mixins of one window share what they touch on ``self``."""
    (tmp_path / "a.py").write_text(
        "class A:\n    def show(self):\n        self.label.setText(self.text)\n"
        "class B:\n    def __init__(self):\n        self.label = None\n        self.text = ''\n"
        "class W(A, B):\n    pass\n"
        "class Alone:\n    def __init__(self):\n        self.label = 1\n")
    shared, data = shared_attributes(tmp_path)
    assert shared == {"label", "text"} and data == {"label", "text"}


if __name__ == "__main__":
    names, attrs = shared_attributes(Path(sys.argv[1]) if len(sys.argv) > 1 else GUI)
    print(f"shared across classes of one object: {len(names)} names, {len(attrs)} of them data attributes")
    print(sorted(attrs))
