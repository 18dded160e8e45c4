"""Rules no change may break: no eval/exec/pickle/yaml.load/shell=True in the
package or scripts, and SQL only as constant text with parameters.

ruff's bandit rules (S) check much of this too; this test states our own rules
exactly, so a per-line noqa cannot quietly switch one off.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SOURCES = sorted([*(ROOT / "baolife").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")])
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "marshal", "shelve", "dill"}
SQL_METHODS = {"execute", "executemany", "executescript"}


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{where}: imports {name}")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if isinstance(func, ast.Name) and name in FORBIDDEN_CALLS:
            found.append(f"{where}: calls {name}()")
        if name == "load" and isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "yaml":
            found.append(f"{where}: yaml.load (use yaml.safe_load)")
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                found.append(f"{where}: shell= other than False")
        if name in SQL_METHODS and node.args and not _constant_text(node.args[0]):
            found.append(f"{where}: SQL passed to {name}() is not constant text")
    return found


def _constant_text(node: ast.expr) -> bool:
    """A string literal, or literals joined with +, or a name (a statement
    built elsewhere is checked where it is built)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _constant_text(node.left) and _constant_text(node.right)
    return isinstance(node, (ast.Name, ast.Attribute, ast.Subscript))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_dangerous_code(path: Path) -> None:
    assert _problems(path) == []


def test_the_checker_catches_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nimport yaml\n"
        "eval('1')\nexec('x')\nyaml.load(s)\nsubprocess.run('ls', shell=True)\n"
        "cur.execute(f'SELECT * FROM t WHERE id = {x}')\ncur.execute('SELECT %s' % x)\n"
        "cur.execute('SELECT ?', (x,))\n"
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        problems = _problems(bad)
    finally:
        ROOT = saved
    assert len(problems) == 7, problems
