"""The seams of baolife/net: no module reaches into another's private names.

A module that needs another's behaviour calls a public, documented name
(the hub reader once called the listener's ``_message``). Checked on the
source: ``from .x import _name``, ``module._name``, and ``obj._name`` on
anything but ``self`` or ``cls`` (an object of another class).
"""

from __future__ import annotations

import ast
from pathlib import Path

import baolife.net

NET = Path(baolife.net.__file__).parent


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_reaches(source: str) -> list[str]:
    """Where ``source`` uses a private name of another module or object."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            found += [f"{node.lineno}: from {module} import {a.name}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_net_module_uses_another_modules_private_names() -> None:
    reaches = {path.name: private_reaches(path.read_text()) for path in sorted(NET.glob("*.py"))}
    assert {name: found for name, found in reaches.items() if found} == {}


def test_the_check_sees_a_reach_into_another_object() -> None:
    # What the hub reader did before issue 14; a self-call is the module's own business.
    source = "class R:\n    def f(self):\n        self.listener._message(1)\n        self._drain()\n"
    assert private_reaches(source) == ["3: self.listener._message"]
    assert private_reaches("from .listener import _peer\n") == ["1: from .listener import _peer"]
