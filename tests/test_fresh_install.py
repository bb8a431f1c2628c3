"""What a new user meets: the README's first command on a fresh copy, in fresh virtual environments.

The suite itself runs in the ``dev`` environment, which has every extra and so hides a
missing dependency. These tests copy the working tree as a clone would have it (tracked
and untracked-but-not-ignored files), then:

* run the README's main-job command verbatim there (its own ``.venv`` with ``[video]`` only);
* install the default extra-less package (a regular, non-editable install, as ``pip install
  vsparagon`` would) and use ``paragon info`` and ``core.paragon.Upscale`` (autoloaded) there.

pip's download cache keeps each install to a minute or two.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _readme_commands() -> list[str]:
    return re.findall(r"```(?:sh|bash)\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def main_job_command() -> str:
    """The README's first command: set up and run the main job."""
    first = _readme_commands()[0].strip()
    assert "paragon upscale" in first, "the README's first command should be the main job"
    return first


def _fresh_copy(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "-c", "safe.directory=*", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted in the work tree but still in the index is skipped
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _clean_env(home: Path) -> dict[str, str]:
    """The environment of a new shell: no virtual environment, no caches of this run (pip's kept)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "VSPARAGON_CACHE")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env["XDG_CACHE_HOME"] = str(home / "cache")  # vsparagon's cache: new, like a new user's
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(command: str | list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        command,
        shell=isinstance(command, str),
        executable="/bin/bash" if isinstance(command, str) else None,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def video_install(tmp_path_factory) -> tuple[Path, dict[str, str], subprocess.CompletedProcess]:
    """A fresh copy where the README's main-job command has run."""
    home = tmp_path_factory.mktemp("user")
    repo = _fresh_copy(home / "vsparagon")
    env = _clean_env(home)
    return repo, env, _run(main_job_command(), repo, env)


def test_the_readme_main_job_works_on_a_fresh_clone(video_install):
    repo, env, result = video_install
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    out = repo / "bigbuckbunny_x2.mkv"
    assert out.is_file()
    assert out.stat().st_size > 50_000
    python = repo / ".venv" / "bin" / "python"
    probe = _run([str(python), "-c", "import imageio_ffmpeg, sys; print(imageio_ffmpeg.get_ffmpeg_exe())"], repo, env)
    info = _run([probe.stdout.strip(), "-hide_banner", "-i", str(out)], repo, env)
    assert re.search(r"Video: .* 640x360", info.stderr), info.stderr
    assert "Audio:" in info.stderr
    # the [video] environment has no PyTorch: the main job never needed it
    assert not (repo / ".venv" / "bin" / "torchrun").exists()


def test_paragon_info_and_missing_extras_in_the_video_environment(video_install):
    repo, env, result = video_install
    assert result.returncode == 0, result.stderr[-2000:]
    paragon = str(repo / ".venv" / "bin" / "paragon")
    info = _run([paragon, "info"], repo, env)
    assert info.returncode == 0, info.stderr
    assert "paragonsr_tiny_x2" in info.stdout
    assert "needs PyTorch: pip install 'vsparagon[export]'" in info.stdout  # torch backend, said why
    for argv, extra in (
        (["train", "--explain"], "train"),
        (["export", "--variant", "tiny", "--scale", "2", "--random-init", "-o", "m.onnx"], "export"),
        (["eval", "tiny", "."], "train"),
    ):
        done = _run([paragon, *argv], repo, env)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert f"pip install 'vsparagon[{extra}]'" in done.stderr


def test_the_default_install_runs_the_plugin_and_paragon_info(tmp_path):
    repo = _fresh_copy(tmp_path / "vsparagon")
    env = _clean_env(tmp_path)
    venv = tmp_path / "venv"
    # from the clone, as its README says (its .python-version selects Python 3.12 under pyenv)
    made = _run(f"python3.12 -m venv {venv} && {venv}/bin/pip install -q .", repo, env)
    assert made.returncode == 0, (made.stdout + made.stderr)[-3000:]
    info = _run([str(venv / "bin" / "paragon"), "info"], tmp_path, env)
    assert info.returncode == 0, info.stderr
    assert "paragonsr_tiny_x2" in info.stdout
    # a plain script: nothing imported, core.paragon autoloaded from the installed wheel
    script = (
        "import sys, vapoursynth as vs\n"
        "clip = vs.core.std.BlankClip(width=40, height=30, format=vs.YUV420P8, length=3, color=[128, 100, 160])\n"
        "out = vs.core.paragon.Upscale(clip, variant='tiny')\n"
        "f = out.get_frame(2)\n"
        "print(out.width, out.height, out.format.name, 'torch' in sys.modules)\n"
    )
    ran = _run([str(venv / "bin" / "python"), "-c", script], tmp_path, env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "80 60 YUV420P8 False"
    upscale = _run([str(venv / "bin" / "paragon"), "upscale", "in.mkv", "out.mkv"], tmp_path, env)
    assert upscale.returncode == 2
    assert upscale.stderr.count("\n") == 1, upscale.stderr
    assert "pip install 'vsparagon[video]'" in upscale.stderr
