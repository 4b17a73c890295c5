"""Sizes a reader can hold in mind: no product module over 400 lines, no function or method over 60.

A flow's signature is its run form, one line a parameter, so a flow is measured from the first line of
its body (its docstring included); every other function from its `def` line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_FOLDERS = ("ppcmk", "cli", "flows", "tasks", "blocks", "sandbox", "deployments", "bench")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Offenders that may wait, by path (a module) or path:function (a function), each with why. An entry that no
# longer offends fails the test, so the list only shrinks.
ALLOWED: dict[str, str] = {}


@dataclass(frozen=True)
class Offender:
    key: str  # path for a module, path:name for a function: what ALLOWED names
    line: int
    what: str
    lines: int
    limit: int

    def __str__(self) -> str:
        path = self.key.split(":")[0]
        return f"{path}:{self.line}: {self.what} has {self.lines} lines (at most {self.limit})"


def is_flow(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Decorated with Prefect's `flow` (`@flow`, `@flow(...)` or `@prefect.flow(...)`)."""
    for decorator in function.decorator_list:
        called = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
        if name == "flow":
            return True
    return False


def function_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    start = function.body[0].lineno if is_flow(function) else function.lineno
    return (function.end_lineno or start) - start + 1


def offenders_in(source: str, path: str) -> list[Offender]:
    found = []
    module_lines = len(source.splitlines())
    if module_lines > MAX_MODULE_LINES:
        found.append(Offender(path, 1, "the module", module_lines, MAX_MODULE_LINES))
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = function_lines(node)
            if lines > MAX_FUNCTION_LINES:
                found.append(Offender(f"{path}:{node.name}", node.lineno, f"{node.name}()", lines,
                                      MAX_FUNCTION_LINES))
    return found


def product_offenders() -> list[Offender]:
    modules = sorted(module for folder in PRODUCT_FOLDERS for module in (ROOT / folder).rglob("*.py"))
    return [offender for module in modules
            for offender in offenders_in(module.read_text(encoding="utf-8"),
                                         module.relative_to(ROOT).as_posix())]


def test_no_product_module_or_function_is_too_long() -> None:
    too_long = [str(o) for o in product_offenders() if o.key not in ALLOWED]
    assert not too_long, "split these along a real seam:\n" + "\n".join(too_long)


def test_every_allowed_offender_still_offends() -> None:
    offending = {o.key for o in product_offenders()}
    assert not set(ALLOWED) - offending, "no longer too long: take these off ALLOWED"


def test_a_long_module_or_function_offends_and_a_flow_signature_does_not_count() -> None:
    parameters = "".join(f"    p{n}: int = {n},\n" for n in range(30))
    flow = "@flow(name='f')\ndef long_form(\n" + parameters + ") -> None:\n" + "    pass\n" * 60
    function = "def long_body() -> None:\n" + "    pass\n" * 60
    method = "class Holder:\n    def long_method(self) -> None:\n" + "        pass\n" * 60
    padding = "\n" * (MAX_MODULE_LINES - flow.count("\n") - function.count("\n") - method.count("\n"))

    found = offenders_in(flow + function + method + padding + "x = 1\n", "new.py")

    assert [(o.what, o.lines) for o in found] == [("the module", 401), ("long_body()", 61),
                                                  ("long_method()", 61)]
    assert str(found[1]).startswith(f"new.py:{flow.count(chr(10)) + 1}: long_body() has 61 lines")
