"""deps: the project's import graph, and the exact code deps of every dvc.yaml stage.

A stage's code deps are its entry module (`python -m stages.<name>` in its cmd) and every
project module it imports, transitively; nothing more, so editing the judge reruns only
evaluate and editing the rules generator reruns generate and what follows it. Empty
`__init__.py` files carry no code and are left out. The other deps of a stage (the data
files it reads) are kept as they are.

  python -m tools.deps            # print each stage's derived code deps
  python -m tools.deps --check    # exit 1 when dvc.yaml disagrees (tests/test_layout.py runs it)
  python -m tools.deps --write    # rewrite the code deps in dvc.yaml, keeping comments and data deps
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
# The project's own packages; bench/ and tests/ import them but nothing imports those two.
PACKAGES = (
    "common",
    "corpus",
    "synth",
    "quality",
    "dataset",
    "model",
    "training",
    "evaluation",
    "llm",
    "experiments",
    "serving",
    "stages",
    "tools",
)
STAGE_MODULE = re.compile(r"python -m (stages\.\w+)")


@dataclass
class Module:
    name: str  # dotted, e.g. "synth.rules_generator"
    path: Path  # relative to the root
    imports: set[str] = field(default_factory=set)  # project modules it imports
    nested_imports: list[str] = field(default_factory=list)  # "line N: module" inside a def or class


def module_name(path: Path) -> str:
    parts = path.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def scan(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Module]:
    """Every module of the project packages with the project modules it imports."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            modules[module_name(rel)] = Module(module_name(rel), rel)
    for module in modules.values():
        tree = ast.parse((root / module.path).read_text(encoding="utf-8"), str(module.path))
        for node, inside_def in walk_with_scope(tree):
            for target in imported_modules(node, modules):
                module.imports.add(target)
                if inside_def and not is_package(target, modules):
                    module.nested_imports.append(f"line {node.lineno}: {target}")
    return modules


def walk_with_scope(tree: ast.AST):
    """(import node, whether it sits inside a function or class) for every import."""
    stack = [(tree, False)]
    while stack:
        node, inside = stack.pop()
        for child in ast.iter_child_nodes(node):
            child_inside = inside or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, inside
            stack.append((child, child_inside))


def imported_modules(node: ast.Import | ast.ImportFrom, modules: dict[str, Module]) -> list[str]:
    """The project modules an import statement loads (`from pkg import mod` loads pkg.mod)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        names = [node.module or ""]
        names += [f"{node.module}.{alias.name}" for alias in node.names]
    found = []
    for name in names:
        # `import a.b.c` also runs a and a.b: their __init__ files count as imported.
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in modules and prefix not in found:
                found.append(prefix)
    return found


def closure(start: str, modules: dict[str, Module]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(modules[name].imports)
    return seen


def find_cycle(modules: dict[str, Module]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None. Package __init__ edges are ignored
    (importing pkg.mod runs pkg/__init__.py, which is empty)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for target in sorted(modules[name].imports):
            if is_package(target, modules):
                continue
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state:
                found = visit(target, path + [target])
                if found:
                    return found
        state[name] = 2
        return None

    for name in sorted(modules):
        if name not in state:
            found = visit(name, [name])
            if found:
                return found
    return None


def is_package(name: str, modules: dict[str, Module]) -> bool:
    return modules[name].path.name == "__init__.py"


def code_files(names: set[str], modules: dict[str, Module], root: Path = ROOT) -> list[str]:
    """Sorted file paths of the modules, empty __init__.py files left out."""
    files = []
    for name in names:
        path = modules[name].path
        if path.name == "__init__.py" and not (root / path).read_text(encoding="utf-8").strip():
            continue
        files.append(path.as_posix())
    return sorted(files)


def stage_code_deps(dvc: dict, modules: dict[str, Module], root: Path = ROOT) -> dict[str, list[str]]:
    """Stage name -> the code files it runs, derived from its cmd and the import graph."""
    result = {}
    for stage, spec in dvc["stages"].items():
        match = STAGE_MODULE.search(" ".join(str(spec["cmd"]).split()))
        if not match:
            raise ValueError(f"dvc.yaml:{stage}: cmd does not run `python -m stages.<name>`")
        result[stage] = code_files(closure(match.group(1), modules), modules, root)
    return result


def is_code_dep(dep: str, root: Path = ROOT) -> bool:
    """A dep that is project code: a .py file or a whole package folder of the project."""
    return dep.endswith(".py") or dep.split("/")[0] in PACKAGES


def dep_path(dep) -> str:
    return dep if isinstance(dep, str) else next(iter(dep))


def disagreements(root: Path = ROOT) -> list[str]:
    """What dvc.yaml's code deps get wrong, one line per stage; [] when exact."""
    yaml = YAML()
    dvc = yaml.load((root / "dvc.yaml").read_text(encoding="utf-8"))
    derived = stage_code_deps(dvc, scan(root), root)
    problems = []
    for stage, want in derived.items():
        have = sorted(dep_path(d) for d in dvc["stages"][stage].get("deps", []) if is_code_dep(dep_path(d), root))
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        if missing or extra:
            problems.append(f"{stage}: missing {missing or '-'}; not imported {extra or '-'}")
    return problems


def write_deps(root: Path = ROOT) -> None:
    """Replace each stage's code deps with the derived ones; data deps keep their place after them."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    path = root / "dvc.yaml"
    dvc = yaml.load(path.read_text(encoding="utf-8"))
    derived = stage_code_deps(dvc, scan(root), root)
    for stage, files in derived.items():
        deps = dvc["stages"][stage].setdefault("deps", [])
        data = [d for d in deps if not is_code_dep(dep_path(d), root)]
        deps.clear()
        deps.extend([*files, *data])
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(dvc, handle)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when dvc.yaml's code deps are not exact")
    mode.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps from the import graph")
    args = parser.parse_args(argv)
    if args.write:
        write_deps()
        return 0
    if args.check:
        problems = disagreements()
        for line in problems:
            print(f"dvc.yaml deps: {line}", file=sys.stderr)
        if problems:
            print("fix with: python -m tools.deps --write", file=sys.stderr)
        return 1 if problems else 0
    yaml = YAML()
    dvc = yaml.load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    for stage, files in stage_code_deps(dvc, scan()).items():
        print(f"{stage}: {' '.join(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
