"""The layers point one way (pyproject's import-linter contracts), and the plugin path stays torch-free."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_layer_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("runtime/tiling.py", "from vsparagon.models import fuse", "The runtime never reaches models"),
        ("runtime/policy.py", "import torch", "The runtime never reaches models"),
        ("catalogue/table.py", "import vapoursynth", "The catalogue is pure Python"),
        ("train/metrics.py", "from vsparagon.runtime import tiling", "Training depends on models and export"),
        ("plugin/formats.py", "from vsparagon.export import onnx", "load no torch"),
        ("video/trim.py", "import torch", "load no torch"),
    ],
)
def test_a_wrong_way_import_breaks_a_contract(tmp_path, module, line, contract):
    # The same contracts on a copy of the package with one import added where it must not be.
    shutil.copytree(ROOT / "vsparagon", tmp_path / "vsparagon", ignore=shutil.ignore_patterns("__pycache__", "_lib"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / "vsparagon" / module
    target.write_text(target.read_text() + f"\n\ndef _wrong_way() -> None:\n    {line}  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = [text for text in result.stdout.split("\n\n") if "BROKEN" in text]
    assert any(contract in " ".join(text.split()) for text in broken), result.stdout


def _run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("how", ["variant='tiny'", "model=ONNX"], ids=["shipped", "onnx-file"])
def test_upscaling_with_an_onnx_model_loads_neither_torch_nor_the_models_package(how):
    onnx = ROOT / "models" / "paragonsr_tiny_x2.onnx"
    code = (
        "import sys, vapoursynth as vs, vsparagon.plugin\n"
        "clip = vs.core.std.BlankClip(width=48, height=32, format=vs.RGBS, length=2, color=[0.2, 0.5, 0.8])\n"
        f"out = vs.core.paragon.Upscale(clip, {how.replace('ONNX', repr(str(onnx)))})\n"
        "out.get_frame(1)\n"
        "print(out.width, out.height, sorted(m for m in ('torch', 'spandrel', 'vsparagon.models', "
        "'vsparagon.export', 'vsparagon.train', 'vsparagon.tools') if m in sys.modules))\n"
    )
    assert _run_python(code) == "96 64 []"


def test_paragon_info_works_without_the_optional_dependencies():
    code = (
        "import sys\n"
        "for name in ('torch', 'yaml', 'PIL', 'av', 'matplotlib', 'imageio_ffmpeg'): sys.modules[name] = None\n"
        "from vsparagon.cli.info_cmd import gather\n"
        "report = gather()\n"
        "print(report['backends']['torch'], '|', list(report['shipped_models'])[0])"
    )
    assert _run_python(code) == (
        "unavailable: backend='torch' needs PyTorch: pip install 'vsparagon[export]' | paragonsr_tiny_x2"
    )


def test_parsing_the_command_line_loads_no_optional_dependency():
    code = (
        "import sys; from vsparagon.cli.main import build_parser\n"
        "build_parser().parse_args(['train', 'x.yaml'])\n"
        "print(sorted(m for m in ('torch', 'yaml', 'PIL', 'av', 'matplotlib', 'imageio_ffmpeg', 'vapoursynth', "
        "'onnxruntime', 'openvino') if m in sys.modules))"
    )
    assert _run_python(code) == "[]"


@pytest.mark.parametrize(
    ("argv", "blocked", "message"),
    [
        (["train", "--explain"], "yaml", "paragon train needs the train extra (yaml not installed)"),
        (
            ["export", "--variant", "tiny", "--scale", "2", "--random-init", "-o", "m.onnx"],
            "torch",
            "paragon export needs the export",
        ),
        (["eval", "tiny", "."], "av", "paragon eval needs the train extra (av not installed)"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(tmp_path, argv, blocked, message):
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"  # as if the package were not installed
        "from vsparagon.cli.main import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert "pip install 'vsparagon[" in result.stderr
