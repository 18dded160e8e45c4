"""Rules no change may break: no eval/exec/pickle/yaml.load/shell=True in the
package or scripts, and SQL only as constant text with parameters.

SQL is checked where it is built, not only where it is run: text with an SQL
word in it built by an f-string, ``%``, ``.format()`` or ``+`` with a part
that is not constant fails anywhere, and so does any built text bound to a
name that a function passes to ``execute()``. A build that adds only
placeholders is listed in :data:`SQL_BUILT_SAFELY` with its reason.

ruff's bandit rules (S) check much of this too; this test states our own rules
exactly, so a per-line noqa cannot quietly switch one off.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SOURCES = sorted([*(ROOT / "baolife").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")])
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "marshal", "shelve", "dill"}
SQL_METHODS = {"execute", "executemany", "executescript"}
SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b")
# SQL that is built, and why each build is safe: the parts added to the
# constant text are placeholders only, never a value. Keyed by file and the
# exact source of the expression, so any change to one is read again here.
SQL_BUILT_SAFELY = {
    (
        "baolife/db/sqlite.py",
        '"SELECT id, epoch FROM players WHERE id IN (" + marks + ")"',
    ): "marks is one ? per id; the ids go as parameters",
    (
        "baolife/db/mysql_dialect.py",
        '_LOCK_EPOCHS.format(", ".join(["%s"] * count))',
    ): "one %s per id; the ids go as parameters",
    (
        "baolife/db/mysql_dialect.py",
        '_SAVE_HEAD + ", ".join([_SAVE_ROW] * count) + _SAVE_TAIL',
    ): "count copies of a constant row of %s marks; the rows go as parameters",
    (
        "baolife/db/mysql_dialect.py",
        '_AI_SETTLE_PLAYERS_HEAD + ", ".join([_AI_SETTLE_PLAYERS_ROW] * count) + _AI_SETTLE_PLAYERS_TAIL',
    ): "count copies of a constant row of %s marks; the players' costs go as parameters",
    (
        "baolife/db/mysql_dialect.py",
        '_AI_CACHE_PUT_HEAD + ", ".join([_AI_CACHE_PUT_ROW] * count) + _AI_CACHE_PUT_TAIL',
    ): "count copies of a constant row of %s marks; the replies go as parameters",
    (
        "baolife/db/mysql_dialect.py",
        '_PROGRESS_HEAD + ", ".join([_PROGRESS_ROW] * count) + _PROGRESS_TAIL',
    ): "count copies of a constant row of %s marks; the progress rows go as parameters",
    (
        "baolife/db/mysql_dialect.py",
        '_DROP_PROGRESS.format(", ".join(["%s"] * count))',
    ): "one %s per id; the ids go as parameters",
    (
        "baolife/db/cluster.py",
        '_M_OFFLINE.format(", ".join(["%s"] * count), ", ".join(["(%s, %s)"] * count))',
    ): "one %s per player, then one (%s, %s) per player; the worker, the ids and the epochs go as parameters",
}


def _problems(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, str(path))
    rel = path.relative_to(ROOT).as_posix()
    constants = _module_strings(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{where}: imports {name}")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
            found += [f"{rel}:{line}: {what}" for line, what in _sql_problems(node, source, rel, constants)]
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
    return sorted(set(found), key=lambda problem: int(problem.split(":")[1]))


def _module_strings(tree: ast.Module) -> dict[str, str]:
    """Module-level names bound once to constant text (``_LOCK = "SELECT ..."``)."""
    out: dict[str, str] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            if _literal(stmt.value, {}) is not None:
                out[stmt.targets[0].id] = _literal(stmt.value, {}) or ""
    return out


def _literal(node: ast.expr, constants: dict[str, str]) -> str | None:
    """The text of a constant string expression (literals, constant names,
    literals joined with +), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left, constants), _literal(node.right, constants)
        return None if left is None or right is None else left + right
    return None


def _built(node: ast.expr, constants: dict[str, str]) -> str | None:
    """If ``node`` builds text from constant text and other values (an
    f-string with fields, ``%``, ``.format()``, or ``+`` with a part that
    is not constant), the constant text it starts from; else None."""
    if isinstance(node, ast.JoinedStr) and any(isinstance(v, ast.FormattedValue) for v in node.values):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _literal(node.left, constants)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _literal(node.func.value, constants)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and _literal(node, constants) is None:
        parts: list[ast.expr] = []
        stack: list[ast.expr] = [node]
        while stack:
            item = stack.pop()
            if isinstance(item, ast.BinOp) and isinstance(item.op, ast.Add):
                stack += [item.right, item.left]
            else:
                parts.append(item)
        return "".join(_literal(part, constants) or "" for part in parts)
    return None


def _sql_problems(
    scope: ast.FunctionDef | ast.AsyncFunctionDef | ast.Module, source: str, rel: str, constants: dict[str, str]
) -> list[tuple[int, str]]:
    """SQL checked where it is built, in one function (or the module's own
    statements): text built with SQL words in it, and any built text
    bound to a name that reaches execute(), executemany() or executescript()."""
    nodes = list(_own_nodes(scope))
    inside_add = {
        id(child)
        for n in nodes
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add)
        for child in (n.left, n.right)
    }
    built: dict[int, ast.expr] = {}
    for node in nodes:
        if isinstance(node, ast.expr) and id(node) not in inside_add and _built(node, constants) is not None:
            built[id(node)] = node
    bound: dict[str, list[ast.expr]] = {}
    for node in nodes:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    bound.setdefault(target.id, []).append(node.value)
    problems = []

    def allowed(node: ast.expr) -> bool:
        return (rel, ast.get_source_segment(source, node)) in SQL_BUILT_SAFELY

    reported = set()
    for node in built.values():
        if SQL_WORDS.search(_built(node, constants) or "") and not allowed(node):
            reported.add(id(node))
            problems.append((node.lineno, "SQL built by formatting or concatenation (use parameters)"))
    for node in nodes:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
            continue
        if node.func.attr not in SQL_METHODS:
            continue
        sql = node.args[0]
        sources = bound.get(sql.id, []) if isinstance(sql, ast.Name) else [sql]
        for value in sources:
            if id(value) in reported:
                continue
            if id(value) in built and not allowed(value):
                problems.append((value.lineno, f"text built from values reaches {node.func.attr}()"))
            elif not isinstance(sql, ast.Name) and not _constant_text(value):
                problems.append((node.lineno, f"SQL passed to {node.func.attr}() is not constant text"))
    return problems


def _own_nodes(scope: ast.AST) -> list[ast.AST]:
    """The nodes of ``scope`` outside the functions and classes nested in it."""
    out: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        out.append(node)
        stack += list(ast.iter_child_nodes(node))
    return out


def _constant_text(node: ast.expr) -> bool:
    """A string literal, or literals joined with +, or a name, attribute or
    item (a statement bound elsewhere is checked where it is built)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _constant_text(node.left) and _constant_text(node.right)
    return isinstance(node, (ast.Name, ast.Attribute, ast.Subscript))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_dangerous_code(path: Path) -> None:
    assert _problems(path) == []


def _check(tmp_path: Path, code: str, name: str = "sample.py") -> list[str]:
    """The rules run over ``code`` written to ``tmp_path/name``."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(code)
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        return _problems(path)
    finally:
        ROOT = saved


def test_the_checker_catches_what_it_should(tmp_path: Path) -> None:
    problems = _check(
        tmp_path,
        "import pickle\nimport yaml\n"
        "eval('1')\nexec('x')\nyaml.load(s)\nsubprocess.run('ls', shell=True)\n"
        "cur.execute(f'SELECT * FROM t WHERE id = {x}')\ncur.execute('SELECT %s' % x)\n"
        "cur.execute('SELECT ?', (x,))\n",
    )
    assert [p.split(":")[1] for p in problems] == ["1", "3", "4", "5", "6", "7", "8"], problems


def test_sql_is_checked_where_it_is_built_not_only_where_it_is_run(tmp_path: Path) -> None:
    problems = _check(
        tmp_path,
        "def by_id(cur, x):\n"
        "    query = 'SELECT * FROM t WHERE id = {}'.format(x)\n"  # 2: formatted, then passed by name
        "    cur.execute(query)\n"
        "def by_name(cur, name):\n"
        "    where = 'name = ' + repr(name)\n"
        "    statement = BASE + where\n"  # 6: no SQL word here, but built and run
        "    cur.execute(statement)\n"
        "def report(name):\n"
        "    return f'DELETE FROM t WHERE name = {name!r}'\n"  # 9: SQL in an f-string, wherever it goes
        "def fine(cur, x):\n"
        "    query = 'SELECT * FROM t WHERE id = ?'\n"
        "    cur.execute(query, (x,))\n"
        "    log.info(f'selected {x}')\n",
    )
    assert [p.split(":")[1] for p in problems] == ["2", "6", "9"], problems
    assert "reaches execute()" in problems[1]


def test_a_build_known_to_be_safe_passes_only_where_it_is_listed(tmp_path: Path) -> None:
    code = (
        "def epochs(conn, part):\n"
        "    marks = ','.join('?' * len(part))\n"
        '    query = "SELECT id, epoch FROM players WHERE id IN (" + marks + ")"\n'
        "    return conn.execute(query, part)\n"
    )
    assert _check(tmp_path, code, "baolife/db/sqlite.py") == []
    assert len(_check(tmp_path, code, "baolife/db/other.py")) == 1


@pytest.mark.parametrize(("where", "expression"), sorted(SQL_BUILT_SAFELY))
def test_every_build_listed_as_safe_is_still_in_the_tree(where: str, expression: str) -> None:
    assert expression in (ROOT / where).read_text(encoding="utf-8")
