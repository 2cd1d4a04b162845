"""No function in the library or the app is over 60 lines (issue 17): a function that long
does several things, and its parts deserve names. Measured on the AST, from `def` to its
last line, so a nested function counts within the function that encloses it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 60


def long_functions(source: str, limit: int = MAX_LINES) -> list[tuple[str, int]]:
    """(name, lines) of every function or method over `limit` lines, nested ones included."""
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > limit]


def test_the_measure_counts_nested_functions_within_their_parent():
    inner = "\n".join(f"        x{i} = {i}" for i in range(58))
    source = f"def outer():\n    def inner():\n{inner}\n    return inner\n"
    assert long_functions(source) == [("outer", 61)]
    assert long_functions(source, limit=61) == []


@pytest.mark.parametrize("path", sorted((ROOT / "resnext").rglob("*.py"))
                         + sorted((ROOT / "explorer").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_is_over_60_lines(path):
    name = str(path.relative_to(ROOT))
    found = [(function, lines) for function, lines in long_functions(path.read_text("utf-8"))
             ]
    assert found == [], f"{name}: {found} over {MAX_LINES} lines: give its parts names"
