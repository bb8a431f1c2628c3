"""Builds the native ``core.paragon`` shim; all other metadata is in pyproject.toml.

``native/paragon_shim.c`` becomes ``libparagon.so`` in two places:

* ``vsparagon/plugin/_lib/libparagon.so``, loaded with ``std.LoadPlugin`` by
  ``vsparagon.plugin._native`` when autoload did not find the shim (editable
  installs build it there, in the source tree);
* ``vapoursynth/plugins/vsparagon/`` with a ``manifest.vs`` (regular installs
  only), where VapourSynth autoloads it into every core.

The name has no ``cpython-*`` tag and lives in a folder without
``__init__.py``, so nothing takes it for a Python extension module.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

SHIM = "vsparagon.plugin._lib.libparagon"
"""The shim as a dotted name: where the package copy goes."""

AUTOLOAD_DIR = Path("vapoursynth", "plugins", "vsparagon")
"""VapourSynth autoloads the libraries a ``manifest.vs`` lists in each folder of
``site-packages/vapoursynth/plugins/``; a line is a file name without ``.so``."""


def vapoursynth_include() -> str:
    """The folder of ``VapourSynth4.h``, shipped in the vapoursynth wheel."""
    spec = importlib.util.find_spec("vapoursynth")
    include = Path(spec.origin).parent / "include" if spec and spec.origin else None
    if include is None or not (include / "VapourSynth4.h").is_file():
        raise RuntimeError(
            "building vsparagon needs VapourSynth's headers from the vapoursynth package: "
            "pip install 'vapoursynth>=72' (or build with build isolation)"
        )
    return str(include)


class BuildShim(build_ext):
    """``build_ext`` for a VapourSynth plugin rather than a Python extension."""

    def get_ext_filename(self, fullname: str) -> str:
        # The plain name VapourSynth loads, not `libparagon.cpython-312-x86_64-linux-gnu.so`.
        return str(Path(*fullname.split("."))) + ".so"

    def build_extensions(self) -> None:
        self.compiler.add_include_dir(vapoursynth_include())
        super().build_extensions()

    def run(self) -> None:
        # The folder has no __init__.py, so nothing else creates it for in-place builds.
        Path(self.get_ext_fullpath(SHIM)).parent.mkdir(parents=True, exist_ok=True)
        super().run()
        if not self.editable_mode:
            self.stage_autoload_copy()

    def stage_autoload_copy(self) -> None:
        """Put the shim and its manifest where VapourSynth autoloads from."""
        built = Path(self.build_lib, self.get_ext_filename(SHIM))
        target = Path(self.build_lib, AUTOLOAD_DIR)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, target / built.name)
        (target / "manifest.vs").write_text(f"[VapourSynth Manifest V1]\n{built.stem}\n", encoding="ascii")


SHIPPED_FILES = ("paragonsr_*.onnx", "paragonsr_*.safetensors", "paragonsr_*.md", "paragonsr_*.png", "LICENSE*")
"""The trained models in ``models/`` (and their cards) that a wheel carries in ``vsparagon/shipped/``."""


class BuildPyWithModels(build_py):
    """``build_py`` that also copies the shipped models into the package.

    Editable installs find them in the repository's ``models/`` folder instead
    (``vsparagon.catalogue.shipped.SHIPPED_DIRS``), so nothing is copied there.
    """

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        source = Path(__file__).resolve().parent / "models"
        target = Path(self.build_lib, "vsparagon", "shipped")
        target.mkdir(parents=True, exist_ok=True)
        for pattern in SHIPPED_FILES:
            for path in sorted(source.glob(pattern)):
                shutil.copy2(path, target / path.name)


setup(
    ext_modules=[
        Extension(
            SHIM,
            sources=["native/paragon_shim.c"],
            libraries=["dl", "pthread"],
            extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra", "-fvisibility=hidden"],
        )
    ],
    cmdclass={"build_ext": BuildShim, "build_py": BuildPyWithModels},
    # The shim only uses Python's stable ABI, looked up at run time.
    options={"bdist_wheel": {"py_limited_api": "cp312"}},
)
