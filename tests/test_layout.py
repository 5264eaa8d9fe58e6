"""The layout rules: no import cycles, no imports hidden in functions, no module that shadows
the standard library, stages/ holds only stage entry points, and dvc.yaml's code deps are
exactly what each stage imports (tools/deps.py derives them)."""

import sys

from ruamel.yaml import YAML

from tests.conftest import PACKAGES, ROOT
from tools import deps


def test_no_import_cycles():
    assert deps.find_cycle(deps.scan()) is None


def test_the_cycle_finder_finds_a_cycle(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/__init__.py").write_text("")
    (tmp_path / "pkg/a.py").write_text("from pkg.b import x\n")
    (tmp_path / "pkg/b.py").write_text("import os\n\n\ndef f():\n    from pkg import a\n")
    modules = deps.scan(tmp_path, ("pkg",))
    assert deps.find_cycle(modules) == ["pkg.a", "pkg.b", "pkg.a"]
    assert modules["pkg.b"].nested_imports == ["line 5: pkg.a"]


def test_no_project_import_inside_a_function_or_class():
    nested = {name: m.nested_imports for name, m in deps.scan().items() if m.nested_imports}
    assert nested == {}


def test_no_module_shadows_the_standard_library():
    shadowing = [
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES + ("bench", "tests")
        for path in (ROOT / package).rglob("*.py")
        if path.stem in sys.stdlib_module_names
    ]
    assert shadowing == []
    assert not set(PACKAGES) & set(sys.stdlib_module_names)


def test_stages_holds_only_the_dvc_stage_entry_points():
    dvc = YAML().load((ROOT / "dvc.yaml").read_text())
    entry_points = {deps.STAGE_MODULE.search(" ".join(spec["cmd"].split())).group(1) for spec in dvc["stages"].values()}
    modules = {path.stem for path in (ROOT / "stages").glob("*.py")} - {"__init__"}
    assert {f"stages.{name}" for name in modules} == entry_points
    assert set(dvc["stages"]) == {name.split(".")[1] for name in entry_points}


def test_domain_packages_never_import_stages_or_tools():
    for name, module in deps.scan().items():
        if name.split(".")[0] not in ("stages", "tools"):
            assert not {m for m in module.imports if m.split(".")[0] in ("stages", "tools")}, name


def test_package_inits_are_empty():
    for package in PACKAGES:
        assert (ROOT / package / "__init__.py").read_text().strip() == "", package


def test_dvc_yaml_code_deps_are_exactly_the_imported_modules():
    assert deps.disagreements() == []


def test_a_missing_or_extra_code_dep_is_reported(tmp_path):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "common/files.py").write_text("")
    (tmp_path / "common/judge.py").write_text("")
    (tmp_path / "stages/clean.py").write_text("from common import files\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  clean:\n    cmd: python -m stages.clean\n"
        "    deps:\n      - stages/clean.py\n      - common/judge.py\n      - data/raw.jsonl\n"
    )
    assert deps.disagreements(tmp_path) == ["clean: missing ['common/files.py']; not imported ['common/judge.py']"]
    deps.write_deps(tmp_path)
    assert deps.disagreements(tmp_path) == []
    written = YAML().load((tmp_path / "dvc.yaml").read_text())
    assert list(written["stages"]["clean"]["deps"]) == ["common/files.py", "stages/clean.py", "data/raw.jsonl"]
