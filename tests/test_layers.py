"""The import contracts of pyproject.toml ([tool.importlinter], issue 17): layers that point
one way (pulse > agents > streams > schemas), a pure streams/ (no clock, files, environment,
YAML or network), schemas/ without broker or HTTP code, and no import cycles inside a package.

import-linter (grimp) finds a package's modules by walking its directory, but the repository
keeps schemas/, streams/ and agents/ at the top and installs them as pulse.schemas, ... (the
package-dir mapping of pyproject.toml). So the check runs on a copy of the sources laid out as
installed, in a fresh interpreter whose `pulse` is that copy.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"


def installed_layout(dest: Path) -> Path:
    """Copy the Python sources to `dest` as they are installed (pulse/, pulse/schemas/, ...)."""
    mapping = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-dir"]
    # the root package first, so that the mapped subpackages land on top of it
    for package, folder in sorted(mapping.items(), key=lambda item: item[0].count(".")):
        target = dest.joinpath(*package.split("."))
        shutil.copytree(ROOT / folder, target, dirs_exist_ok=True,
                        ignore=lambda d, names: [n for n in names if n == "__pycache__"
                                                 or (os.path.isfile(os.path.join(d, n)) and not n.endswith(".py"))])
    return dest


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(lint), "--no-cache", "--no-logo", str(PYPROJECT)], cwd=tree, env=env,
                          capture_output=True, text=True)


def test_the_import_contracts_hold(tmp_path):
    done = lint_imports(installed_layout(tmp_path))
    assert "Contracts: 4 kept, 0 broken." in done.stdout, done.stdout + done.stderr
    assert done.returncode == 0


@pytest.mark.parametrize("module, source, broken", [
    # the import the old boundary test could not see: configuration loading (YAML, files)
    ("streams/peek.py", "from pulse.config import load_config\n", "layers: pulse > agents > streams > schemas"),
    ("streams/peek.py", "import time\n\nNOW = time.time()\n",
     "streams is pure: no clock, files, environment, YAML or network"),
    ("schemas/peek.py", "from pulse.streams import engine\n", "layers: pulse > agents > streams > schemas"),
    ("agents/peek.py", "def f():\n    from pulse.settings import from_args\n", "layers: pulse > agents > streams > schemas"),
    ("streams/peek.py", "from . import report\n", "no import cycles inside a package"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, source, broken):
    tree = installed_layout(tmp_path)
    package, name = module.split("/")
    target = tree / "pulse" / package / name
    target.write_text(source)
    if "report" in source:          # make peek and report import each other
        report = tree / "pulse" / "streams" / "report.py"
        report.write_text(report.read_text() + "\nfrom . import peek  # noqa\n")
    done = lint_imports(tree)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{broken} BROKEN" in done.stdout, done.stdout
