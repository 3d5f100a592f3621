"""The benchmarks are a package run from the repository root: each module imports without touching sys.path."""
from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
MODULES = sorted(path.stem for path in (REPOSITORY / "benchmarks").glob("*.py") if path.stem != "__init__")


@pytest.mark.parametrize("name", MODULES)
def test_every_benchmark_module_imports_as_part_of_the_package_and_leaves_sys_path_alone(name):
    source = (REPOSITORY / "benchmarks" / f"{name}.py").read_text()
    assert "sys.path" not in source, f"benchmarks/{name}.py edits sys.path"
    before = list(sys.path)
    importlib.import_module(f"benchmarks.{name}")
    assert sys.path == before


def test_every_child_a_benchmark_starts_is_a_benchmark_module_run_with_dash_m():
    children = set()
    for path in (REPOSITORY / "benchmarks").glob("*.py"):
        source = path.read_text()
        assert "__file__, " not in source, f"{path.name} starts itself by file path"
        children |= set(re.findall(r'"-m", "benchmarks\.(\w+)"', source))
    assert children and children <= set(MODULES), children - set(MODULES)


def test_a_benchmark_runs_as_a_module_from_the_repository_root():
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_load", "--help"], cwd=REPOSITORY,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m benchmarks.bench_load")
