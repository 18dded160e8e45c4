"""A long module says why it is one piece (issue 14): every module of the
package and the scripts over :data:`LONG` lines has, in its docstring, a
paragraph that starts "One piece:" (or "One module:") and gives the reason.
A module that grows past the line without one fails here, so splitting it or
saying why not is decided when it grows, not years later."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
LONG = 400
REASON = re.compile(r"(?:^|\n)One (?:piece|module):\s+\S")


def _long_modules() -> dict[str, str]:
    """Path -> docstring of every module over LONG lines."""
    found = {}
    for path in sorted([*(ROOT / "baolife").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")]):
        text = path.read_text()
        if text.count("\n") > LONG:
            found[str(path.relative_to(ROOT))] = ast.get_docstring(ast.parse(text)) or ""
    return found


def test_long_modules_say_why_they_are_one_piece() -> None:
    modules = _long_modules()
    assert modules  # the rule is in force: some modules are that long
    missing = [path for path, doc in modules.items() if not REASON.search(doc)]
    assert not missing, f"over {LONG} lines without a 'One piece:' paragraph in the docstring: {missing}"


def test_the_reason_must_be_a_paragraph_of_the_docstring() -> None:
    assert REASON.search("Does things.\n\nOne piece: the parts share one state.")
    assert not REASON.search("Does things.\n\nOne piece:")
    assert not REASON.search("Does things in one piece: somewhere mid-sentence.")
