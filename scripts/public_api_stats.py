"""Count the public functions of histoquant and how many carry numpydoc sections and full hints.

    python scripts/public_api_stats.py [-v]      (-v: list every one that falls short)

Public: a module-level function, or a method of a public class, whose name has no leading
underscore, in a module whose dotted path has no part with one.
Documented (numpydoc): a docstring with a ``Parameters`` section when the function takes
arguments (besides self/cls) and a ``Returns``/``Yields`` section when it returns a value;
for a property, any docstring.
Annotated: every argument (besides self/cls) and the return carry a type hint.

ruff's D and ANN rules check docstrings and hints too, but neither asks for the numpydoc
sections; this counts them.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _section(doc: str, name: str) -> bool:
    return re.search(rf"^\s*{name}\s*\n\s*-{{3,}}", doc, re.M) is not None


def _own_nodes(fn: ast.AST) -> list[ast.AST]:
    """Nodes of ``fn`` outside nested functions and classes."""
    out, stack = [], list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        out.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))
    return out


def _returns_value(fn: ast.AST) -> bool:
    for node in _own_nodes(fn):
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            return True
    return False


def _check(fn: ast.FunctionDef | ast.AsyncFunctionDef, in_class: bool) -> tuple[bool, bool]:
    a = fn.args
    args = a.posonlyargs + a.args + a.kwonlyargs
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list)
    if in_class and not static and args and args[0].arg in ("self", "cls"):
        args = args[1:]
    args += [x for x in (a.vararg, a.kwarg) if x]
    prop = any(isinstance(d, ast.Name) and d.id in ("property", "cached_property")
               for d in fn.decorator_list)
    annotated = all(x.annotation is not None for x in args) and fn.returns is not None
    doc = ast.get_docstring(fn)
    documented = doc is not None and (prop or (
        (not args or _section(doc, "Parameters"))
        and (not _returns_value(fn) or _section(doc, "Returns") or _section(doc, "Yields"))))
    return documented, annotated


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    rows = []
    for path in sorted((ROOT / "histoquant").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        if any(p.startswith("_") for p in rel.parts if p != "__init__"):
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if not node.name.startswith("_"):
                    rows.append((f"{rel}:{node.name}", *_check(node, False)))
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                for sub in node.body:
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                            and not sub.name.startswith("_"):
                        rows.append((f"{rel}:{node.name}.{sub.name}", *_check(sub, True)))
    documented = sum(r[1] for r in rows)
    annotated = sum(r[2] for r in rows)
    print(f"{len(rows)} public functions: {documented} with numpydoc sections, "
          f"{annotated} fully annotated, {sum(r[1] and r[2] for r in rows)} both")
    if verbose:
        for name, d, a in rows:
            if not (d and a):
                print(f"  {'' if d else 'no-numpydoc '}{'' if a else 'no-hints '}{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
