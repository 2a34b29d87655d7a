"""The code's structure in numbers, for docs/architecture.md's before/after table.

    python bench/bench_structure.py [REV ...]        # default: the working tree

For each git revision (or the working tree): modules over 400 lines, functions over 60 lines,
imports inside function bodies, and for each name of the contract between the layers, the number
of modules in the packages (not the tests) that spell it out as a literal (a variant name, a
label, a metric name, an outcome, a trial key, an image kind, a file name of the experiment
folder): the target is one, the vocabulary.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGES = ("trainables", "search_spaces", "study", "analysis")
# contract name -> a literal that only a module spelling that name out contains
SIGNATURES = {
    "variant names": r'"sintro_tc"',
    "variant labels": r'"Soft-Intro-TCVAE"',
    "data set names": r'"dsprites_small"',
    "metric names (disentanglement)": r'"dci_completeness"',
    "metric names (unsupervised)": r'"gaussian_tc"',
    "metric directions": r'LOWER_IS_BETTER|"min" if|== "min"',
    "outcome names": r'"diverged"',
    "trial keys": r'"metrics_every"',
    "image kinds": r'"samples_std3"',
    "experiment file names": r'"trials\.parquet"|"study\.json"|"optuna\.journal"',
}


def sources(rev: str | None) -> dict[str, str]:
    """path -> source of every .py file of the packages at `rev` (None: the working tree)."""
    if rev is None:
        return {str(p): p.read_text() for pkg in PACKAGES for p in Path(pkg).rglob("*.py")}
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, *PACKAGES], capture_output=True,
                           text=True, check=True).stdout.split()
    return {n: subprocess.run(["git", "show", f"{rev}:{n}"], capture_output=True, text=True, check=True).stdout
            for n in names if n.endswith(".py")}


def measure(files: dict[str, str]) -> dict[str, object]:
    long_modules = sorted((len(s.splitlines()), p) for p, s in files.items() if len(s.splitlines()) > 400)
    long_functions, inner_imports = [], 0
    for path, source in files.items():
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long_functions.append((length, f"{path}:{node.name}"))
                inner_imports += sum(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(node))
    places = {name: sum(bool(re.search(rx, s)) for s in files.values()) for name, rx in SIGNATURES.items()}
    return {"modules > 400 lines": long_modules, "functions > 60 lines": sorted(long_functions, reverse=True),
            "imports inside functions": inner_imports, "places": places}


def main(revs: list[str]) -> None:
    for rev in revs or [None]:
        m = measure(sources(rev))
        print(f"## {rev or 'working tree'}")
        print(f"modules over 400 lines ({len(m['modules > 400 lines'])}):",
              ", ".join(f"{p} {n}" for n, p in m["modules > 400 lines"]) or "none")
        print(f"functions over 60 lines ({len(m['functions > 60 lines'])}):",
              ", ".join(f"{p} {n}" for n, p in m["functions > 60 lines"]) or "none")
        print("imports inside function bodies:", m["imports inside functions"])
        for name, count in m["places"].items():
            print(f"  {name}: spelled out in {count} module(s)")
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
