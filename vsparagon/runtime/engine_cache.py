"""The TensorRT engine cache: built engines kept on disk, each with a record of everything it was built from.

An engine is valid only for the exact graph, precision, shapes, builder settings, TensorRT
version and GPU it was built with, so every one of those is part of its identity
(:class:`EngineIdentity`). A JSON sidecar records the identity and the engine's checksum;
an entry whose record is missing, does not match or whose bytes fail the checksum or fail
to deserialize is rebuilt, once. Writes are atomic; a lock file stops two processes
building the same engine at once (the second waits, then loads what the first built).

Layout of ``cache_dir()/engines``::

    <model>-<precision>-<shape>-<key>.engine   the serialized engine
    <model>-<precision>-<shape>-<key>.json     its identity and checksum
    <model>-<precision>-<shape>-<key>.lock     held while it is built
    timing/trt<version>-<gpu>-sm<cc>.timing    one timing cache per (TensorRT version, GPU)
    ort-trt/                                   ONNX Runtime's TensorRT provider's own caches

No GPU runtime is imported here.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from vsparagon._files import atomic_write, cache_dir
from vsparagon.errors import ParagonError

#: Bumped when the layout or the identity changes: older entries are then never matched.
CACHE_FORMAT = 1
#: Subfolder of :func:`engines_folder` holding ONNX Runtime's TensorRT provider caches (listed and cleared too).
ORT_TRT_FOLDER = "ort-trt"
#: Subfolder of :func:`engines_folder` holding the timing caches.
TIMING_FOLDER = "timing"

Shape = tuple[int, ...]


class EngineCacheError(ParagonError):
    """The engine cache cannot store an entry (a full disk, a failing write)."""


class CorruptEngine(Exception):
    """Raised by a ``load`` callable when the bytes it was given do not deserialize into an engine."""


@dataclass(frozen=True, kw_only=True)
class EngineIdentity:
    """Everything an engine is built from. Two engines with equal identities are interchangeable."""

    model: str
    """The model's file name (for people: listings and file names; not part of :meth:`key`)."""
    onnx_sha256: str
    """SHA-256 of the ONNX bytes given to the builder."""
    precision: str
    """``fp16`` or ``fp32``: what the graph computes in (an fp16 graph in a strongly typed network)."""
    io_types: str
    """Input and output element types, e.g. ``float16->float16``."""
    profile: tuple[Shape, Shape, Shape]
    """The optimisation profile's (min, opt, max) input shapes; all three equal for a static engine."""
    workspace_mib: int
    """The builder's workspace limit in MiB (0: TensorRT's default, the device's memory)."""
    opt_level: int
    """The builder optimisation level (0 to 5)."""
    trt_version: str
    """``tensorrt.__version__``."""
    gpu: str
    """The GPU's name, e.g. ``NVIDIA H100 80GB HBM3``."""
    compute: str
    """The GPU's compute capability, e.g. ``9.0``."""
    format_version: int = CACHE_FORMAT
    """:data:`CACHE_FORMAT` when the entry was written."""

    def key(self) -> str:
        """A hash of every field but :attr:`model`: the entry's identity in its file name."""
        fields = asdict(self)
        del fields["model"]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]

    def shape_text(self) -> str:
        """``1x3x1080x1920``, or ``min-max`` for a profile that spans shapes."""
        low, _, high = self.profile
        text = "x".join(map(str, low))
        return text if low == high else f"{text}-{'x'.join(map(str, high))}"

    def stem(self) -> str:
        """The entry's file name without suffix: readable, and unique through :meth:`key`."""
        model = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.model).stem)[:60] or "model"
        return f"{model}-{self.precision}-{self.shape_text()}-{self.key()}"

    def record(self) -> dict[str, object]:
        """The identity as JSON-ready data (shapes as lists)."""
        return json.loads(json.dumps(asdict(self)))


def engines_folder() -> Path:
    """``cache_dir()/engines`` (``$VSPARAGON_CACHE``, else the user's cache folder)."""
    return cache_dir() / "engines"


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def usable_folder(folder: Path) -> Path:
    """``folder`` created, or, where it cannot be written, a temporary folder (said once on stderr)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
        return folder
    except OSError as exc:
        fallback = Path(tempfile.gettempdir()) / f"vsparagon-engines-{os.getuid() if hasattr(os, 'getuid') else 0}"
        try:
            fallback.mkdir(parents=True, exist_ok=True)
        except OSError as again:
            raise EngineCacheError(
                f"neither the engine cache folder {folder} ({exc.strerror or exc}) nor {fallback} "
                f"({again.strerror or again}) can be written; set VSPARAGON_CACHE to a writable folder"
            ) from None
        _say_once(
            f"vsparagon: the engine cache folder {folder} is not writable ({exc.strerror or exc}); engines are "
            f"kept in {fallback} for now: set VSPARAGON_CACHE to a writable folder to keep them"
        )
        return fallback


@functools.cache
def _say_once(line: str) -> None:
    print(line, file=sys.stderr)


class EngineCache:
    """The engines of one folder (default :func:`engines_folder`, or a temporary one where that is not writable)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = usable_folder(folder or engines_folder())

    def entry(self, identity: EngineIdentity) -> Path:
        """The engine file of ``identity`` (its sidecar and lock share the stem)."""
        return self.folder / f"{identity.stem()}.engine"

    def fetch[T](
        self, identity: EngineIdentity, *, build: Callable[[], bytes], load: Callable[[bytes], T], what: str
    ) -> T:
        """The engine of ``identity``: loaded from the cache, else built by ``build`` and stored.

        ``load`` turns bytes into an engine and raises :class:`CorruptEngine` when they do not
        deserialize; such an entry is rebuilt once (a rebuilt engine that fails too is an error).
        ``what`` names the engine in the lines on stderr.

        Raises:
            EngineCacheError: the new entry cannot be written (disk full, I/O error); nothing half-written stays.
        """
        engine = self.entry(identity)
        with _locked(engine.with_suffix(".lock"), what):
            data, problem = self._read(identity, engine)
            if data is not None:
                try:
                    return load(data)
                except CorruptEngine as exc:
                    problem = f"it does not deserialize ({exc})"
            if problem is not None:
                print(f"vsparagon: rebuilding the cached engine {engine.name}: {problem}", file=sys.stderr)
                _remove_entry(engine)
            data = build()
            self._store(identity, engine, data)
            try:
                return load(data)
            except CorruptEngine as exc:
                _remove_entry(engine)
                raise EngineCacheError(f"the engine just built for {what} does not deserialize ({exc})") from None

    def _read(self, identity: EngineIdentity, engine: Path) -> tuple[bytes | None, str | None]:
        """The entry's bytes, or None with why a present entry is unusable (None: there is no entry)."""
        sidecar = engine.with_suffix(".json")
        if not engine.exists():
            return None, None
        try:
            record = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            return None, "its record is missing or unreadable"
        if not isinstance(record, dict) or record.get("identity") != identity.record():
            return None, "its record belongs to another build"
        data = engine.read_bytes()
        if hashlib.sha256(data).hexdigest() != record.get("engine_sha256"):
            return None, "its bytes do not match the checksum in its record"
        return data, None

    def _store(self, identity: EngineIdentity, engine: Path, data: bytes) -> None:
        record = {
            "identity": identity.record(),
            "engine_sha256": hashlib.sha256(data).hexdigest(),
            "engine_bytes": len(data),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        try:
            atomic_write(engine, lambda tmp: tmp.write_bytes(data))
            atomic_write(engine.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(record, indent=2)))
        except OSError as exc:
            _remove_entry(engine)
            raise EngineCacheError(_write_failure(engine, exc)) from None

    def timing_file(self, *, trt_version: str, gpu: str, compute: str) -> Path:
        """The timing cache shared by every build on one (TensorRT version, GPU)."""
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", gpu).strip("_") or "gpu"
        return self.folder / TIMING_FOLDER / f"trt{trt_version}-{name}-sm{compute.replace('.', '')}.timing"

    def read_timing(self, path: Path) -> bytes:
        """A timing cache's bytes (empty: none yet, or unreadable; TensorRT then starts a new one)."""
        try:
            return path.read_bytes()
        except OSError:
            return b""

    def write_timing(self, path: Path, data: bytes) -> None:
        """Store a timing cache atomically; a failure only costs later builds time, so it is said, not raised."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: tmp.write_bytes(data))
        except OSError as exc:
            _say_once(f"vsparagon: the TensorRT timing cache {path} was not saved ({exc.strerror or exc})")


def _write_failure(engine: Path, exc: OSError) -> str:
    why = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror or str(exc)
    return (
        f"cannot write the TensorRT engine {engine.name} to {engine.parent} ({why}); free space there, "
        "set VSPARAGON_CACHE to a folder with room, or remove old engines with `paragon cache clear`"
    )


def _remove_entry(engine: Path) -> None:
    for path in (engine, engine.with_suffix(".json")):
        path.unlink(missing_ok=True)


def _remove_free_lock(path: Path) -> None:
    """Remove the lock file ``path`` unless another process holds it (a build in progress): removing
    it then would let a third process start the same build instead of waiting for it."""
    try:
        handle = path.open("r+b")
    except OSError:
        return  # gone already, or not ours to open
    with handle:
        if not _lock(handle, wait=False):
            return
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass  # Windows cannot remove an open file; the next clear does
        finally:
            _unlock(handle)


@contextlib.contextmanager
def _locked(path: Path, what: str) -> Iterator[None]:
    """Hold the lock file ``path`` (the OS drops it if the process dies); say so when another process holds it."""
    try:
        handle = path.open("a+b")
    except OSError as exc:
        raise EngineCacheError(
            f"cannot make the lock file {path} ({exc.strerror or exc}); free space there or set VSPARAGON_CACHE "
            "to a writable folder"
        ) from None
    with handle:
        if not _lock(handle, wait=False):
            print(f"vsparagon: waiting for another process that is building {what}", file=sys.stderr)
            _lock(handle, wait=True)
        try:
            yield
        finally:
            _unlock(handle)


if sys.platform == "win32":
    import msvcrt

    def _lock(handle: object, *, wait: bool) -> bool:
        fd = handle.fileno()  # type: ignore[attr-defined]
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not wait:
                    return False
                time.sleep(0.2)

    def _unlock(handle: object) -> None:
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]

else:
    import fcntl

    def _lock(handle: object, *, wait: bool) -> bool:
        fd = handle.fileno()  # type: ignore[attr-defined]
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True

    def _unlock(handle: object) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)  # type: ignore[attr-defined]


@dataclass(frozen=True, kw_only=True)
class CachedFile:
    """One thing in the engine cache, for ``paragon cache list``."""

    kind: str
    """``trt`` (an engine of this backend), ``timing`` (a timing cache) or ``ort-trt`` (ONNX Runtime's)."""
    path: Path
    """The engine, timing cache or ONNX Runtime file."""
    size: int
    """Bytes on disk (an engine with its sidecar)."""
    modified: float
    """Last modification, seconds since the epoch."""
    model: str = "-"
    precision: str = "-"
    shape: str = "-"
    trt_version: str = "-"
    gpu: str = "-"


def list_cached(folder: Path | None = None) -> list[CachedFile]:
    """Everything in the engine cache: engines (with what their records say), timing caches, ONNX Runtime's files."""
    folder = folder or engines_folder()
    found: list[CachedFile] = []
    if not folder.is_dir():
        return found
    for engine in sorted(folder.glob("*.engine")):
        found.append(_describe_engine(engine))
    for timing in sorted((folder / TIMING_FOLDER).glob("*.timing")):
        stat = timing.stat()
        found.append(CachedFile(kind="timing", path=timing, size=stat.st_size, modified=stat.st_mtime))
    ort = folder / ORT_TRT_FOLDER
    for path in sorted(ort.rglob("*")) if ort.is_dir() else []:
        if path.is_file():
            stat = path.stat()
            found.append(CachedFile(kind="ort-trt", path=path, size=stat.st_size, modified=stat.st_mtime))
    return found


def _describe_engine(engine: Path) -> CachedFile:
    sidecar = engine.with_suffix(".json")
    stat = engine.stat()
    size = stat.st_size + (sidecar.stat().st_size if sidecar.exists() else 0)
    try:
        ident = json.loads(sidecar.read_text())["identity"]
        low, _, high = ident["profile"]
        shape = "x".join(map(str, low)) + ("" if low == high else "-" + "x".join(map(str, high)))
        return CachedFile(
            kind="trt",
            path=engine,
            size=size,
            modified=stat.st_mtime,
            model=str(ident["model"]),
            precision=str(ident["precision"]),
            shape=shape,
            trt_version=str(ident["trt_version"]),
            gpu=f"{ident['gpu']} ({ident['compute']})",
        )
    except (OSError, ValueError, KeyError, TypeError):
        return CachedFile(kind="trt", path=engine, size=size, modified=stat.st_mtime, model="? (no readable record)")


def clear_cached(folder: Path | None = None, *, older_than_days: float | None = None) -> list[CachedFile]:
    """Remove what :func:`list_cached` lists (only what was last modified over ``older_than_days`` ago, if given).

    Returns:
        What was removed.
    """
    folder = folder or engines_folder()
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    removed = []
    for item in list_cached(folder):
        if cutoff is not None and item.modified > cutoff:
            continue
        if item.kind == "trt":
            _remove_entry(item.path)
            _remove_free_lock(item.path.with_suffix(".lock"))
        else:
            item.path.unlink(missing_ok=True)
        removed.append(item)
    if older_than_days is None and folder.is_dir():
        for lock in folder.glob("*.lock"):  # left by entries removed while their lock was held
            _remove_free_lock(lock)
    if older_than_days is None and (folder / ORT_TRT_FOLDER).is_dir():
        shutil.rmtree(folder / ORT_TRT_FOLDER, ignore_errors=True)  # its empty subfolders too
    return removed
