"""The package installs as the README says and stays light where it must."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import vsparagon

ROOT = Path(__file__).resolve().parents[1]


def test_importing_vsparagon_does_not_import_torch():
    code = "import sys, vsparagon, vsparagon.catalogue.descriptor, vsparagon.errors; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cli_help_does_not_need_torch_or_vapoursynth():
    code = (
        "import sys; from vsparagon.cli.main import build_parser; build_parser(); "
        "print('torch' in sys.modules, 'vapoursynth' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_py_typed_ships():
    assert (Path(vsparagon.__file__).parent / "py.typed").exists()


def test_python_version_file_selects_312():
    assert (ROOT / ".python-version").read_text().strip() == "3.12"
    assert sys.version_info[:2] >= (3, 12)


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```(?:sh|bash)\n(.*?)\n```", readme, flags=re.S)
    test_commands = [c for c in commands if "pytest" in c]
    assert len(test_commands) == 1, "the README should show exactly one test command"
    assert test_commands[0].strip() in (ROOT / ".ci" / "run").read_text()


def test_top_level_layout():
    for name in ("vsparagon", "models", "examples", "tests", "pyproject.toml"):
        assert (ROOT / name).exists(), name
