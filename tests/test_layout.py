"""The code's house rules, checked by scanning src/genlab: no private names across modules, modules named
by their names (torch's `functional as F` is the one convention kept), one way to save weights."""

from __future__ import annotations

import ast
from pathlib import Path

import genlab

SRC = Path(genlab.__file__).parent
CONVENTIONS = {("torch.nn.functional", "F")}
# private attributes of other libraries that genlab has to reach (none of genlab's own)
FOREIGN = {"argparse", "torch", "np", "sys", "os", "gr", "tarfile", "zipfile"}


def _trees():
    for path in sorted(SRC.rglob("*.py")):
        yield path.relative_to(SRC), ast.parse(path.read_text(), str(path))


def test_no_private_names_imported_from_other_modules():
    bad = [f"{p}:{n.lineno} {n.module}.{a.name}" for p, tree in _trees() for n in ast.walk(tree)
           if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("genlab")
           for a in n.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, bad


def test_no_private_attributes_of_other_genlab_modules():
    bad = []
    for p, tree in _trees():
        modules = {(a.asname or a.name.split(".")[0]) for n in ast.walk(tree)
                   if isinstance(n, (ast.Import, ast.ImportFrom)) and (getattr(n, "module", None) or "").startswith("genlab")
                   or isinstance(n, ast.Import) and any(a.name.startswith("genlab") for a in n.names)
                   for a in n.names}
        for n in ast.walk(tree):
            if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in modules
                    and n.value.id not in FOREIGN and n.attr.startswith("_") and not n.attr.startswith("__")):
                bad.append(f"{p}:{n.lineno} {n.value.id}.{n.attr}")
    assert not bad, bad


def test_modules_are_named_by_their_names():
    bad = [f"{p}:{n.lineno} {a.name} as {a.asname}" for p, tree in _trees() for n in ast.walk(tree)
           if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names
           if a.asname is not None and len(a.asname) <= 2 and a.asname.isupper()
           and (getattr(n, "module", None) or a.name, a.asname) not in CONVENTIONS
           and (f"{getattr(n, 'module', '')}.{a.name}", a.asname) not in CONVENTIONS]
    assert not bad, bad


def test_weights_are_saved_one_way():
    bad = [f"{p}:{n.lineno}" for p, tree in _trees() if not str(p).startswith("core/train") for n in ast.walk(tree)
           if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == "save_file"]
    assert not bad, bad
