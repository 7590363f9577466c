"""The motion and concepts code imports only public names from other modules and names modules by
their names (no one-letter aliases): an AST scan of src/genlab/systems/motion."""

import ast
from pathlib import Path

import genlab.systems.motion as motion

ROOT = Path(motion.__file__).parent


def _imports():
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                yield path.relative_to(ROOT), node


def test_no_private_names_from_other_modules():
    bad = [f"{p}:{n.lineno} {n.module}.{a.name}" for p, n in _imports() if isinstance(n, ast.ImportFrom)
           for a in n.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, bad


def test_no_one_letter_module_aliases():
    bad = [f"{p}:{n.lineno} {a.name} as {a.asname}" for p, n in _imports() for a in n.names
           if a.asname is not None and len(a.asname) == 1]
    assert not bad, bad
