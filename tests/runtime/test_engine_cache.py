"""The engine cache with real files: identity, sidecar, atomic writes, locking, corrupt entries, fallbacks."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from helpers import ENGINE_IDENTITY as IDENTITY

from vsparagon.runtime import engine_cache
from vsparagon.runtime.engine_cache import (
    CorruptEngine,
    EngineCache,
    EngineCacheError,
    EngineIdentity,
    clear_cached,
    list_cached,
)

CHANGES = {
    "onnx_sha256": "cd" * 32,
    "precision": "fp32",
    "io_types": "float32->float32",
    "profile": ((1, 3, 540, 960),) * 3,
    "workspace_mib": 1024,
    "opt_level": 5,
    "trt_version": "10.8.0",
    "gpu": "NVIDIA H100 80GB HBM3",
    "compute": "9.0",
    "format_version": engine_cache.CACHE_FORMAT + 1,
}


@pytest.fixture(autouse=True)
def _fresh_lines():
    engine_cache._say_once.cache_clear()


def _load(data: bytes) -> bytes:
    if not data.startswith(b"ENGINE"):
        raise CorruptEngine("bad magic")
    return data


class Builds:
    def __init__(self, data: bytes = b"ENGINE one"):
        self.count, self.data = 0, data

    def __call__(self) -> bytes:
        self.count += 1
        return self.data


def test_every_build_input_changes_the_identity():
    assert set(CHANGES) == {f.name for f in dataclasses.fields(EngineIdentity)} - {"model"}
    keys = {IDENTITY.key()}
    for name, value in CHANGES.items():
        keys.add(dataclasses.replace(IDENTITY, **{name: value}).key())
    assert len(keys) == len(CHANGES) + 1
    assert dataclasses.replace(IDENTITY, model="renamed.onnx").key() == IDENTITY.key()  # a rename is the same graph
    assert EngineIdentity(**dataclasses.asdict(IDENTITY)).key() == IDENTITY.key()  # stable


def test_file_names_are_readable():
    assert IDENTITY.stem() == f"tiny_x2-fp16-1x3x1080x1920-{IDENTITY.key()}"
    ranged = dataclasses.replace(
        IDENTITY, model="my model!.onnx", profile=((1, 3, 64, 64), (1, 3, 256, 256), (1, 3, 512, 512))
    )
    assert ranged.stem().startswith("my_model_-fp16-1x3x64x64-1x3x512x512-")


def test_built_once_then_loaded_with_a_sidecar(tmp_path):
    cache, build = EngineCache(tmp_path), Builds()
    assert cache.fetch(IDENTITY, build=build, load=_load, what="x") == b"ENGINE one"
    assert cache.fetch(IDENTITY, build=build, load=_load, what="x") == b"ENGINE one"
    assert build.count == 1
    engine = cache.entry(IDENTITY)
    record = json.loads(engine.with_suffix(".json").read_text())
    assert record["identity"]["gpu"] == "NVIDIA GeForce RTX 4090"
    assert record["identity"]["profile"] == [[1, 3, 1080, 1920]] * 3
    assert record["engine_bytes"] == len(b"ENGINE one")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        engine.name,
        engine.with_suffix(".json").name,
    ]


def test_another_identity_is_another_entry(tmp_path):
    cache, build = EngineCache(tmp_path), Builds()
    cache.fetch(IDENTITY, build=build, load=_load, what="x")
    cache.fetch(dataclasses.replace(IDENTITY, gpu="NVIDIA L4"), build=build, load=_load, what="x")
    assert build.count == 2
    assert len(list(tmp_path.glob("*.engine"))) == 2


@pytest.mark.parametrize("damage", ["engine bytes", "sidecar missing", "sidecar foreign", "sidecar garbage"])
def test_a_damaged_entry_is_rebuilt(tmp_path, damage, capsys):
    cache, build = EngineCache(tmp_path), Builds()
    cache.fetch(IDENTITY, build=build, load=_load, what="x")
    engine = cache.entry(IDENTITY)
    sidecar = engine.with_suffix(".json")
    if damage == "engine bytes":
        engine.write_bytes(b"ENGINE one, truncat")
    elif damage == "sidecar missing":
        sidecar.unlink()
    elif damage == "sidecar foreign":
        record = json.loads(sidecar.read_text())
        record["identity"]["trt_version"] = "8.6.1"
        sidecar.write_text(json.dumps(record))
    else:
        sidecar.write_text("{not json")
    assert cache.fetch(IDENTITY, build=build, load=_load, what="x") == b"ENGINE one"
    assert build.count == 2
    assert f"vsparagon: rebuilding the cached engine {engine.name}" in capsys.readouterr().err
    assert cache.fetch(IDENTITY, build=build, load=_load, what="x") == b"ENGINE one"
    assert build.count == 2  # the rebuilt entry is good


def test_an_entry_that_does_not_deserialize_is_rebuilt_once(tmp_path, capsys):
    cache = EngineCache(tmp_path)
    cache.fetch(IDENTITY, build=Builds(b"garbage that passes the checksum"), load=lambda d: d, what="x")
    build = Builds()
    assert cache.fetch(IDENTITY, build=build, load=_load, what="x") == b"ENGINE one"
    assert build.count == 1
    assert "does not deserialize (bad magic)" in capsys.readouterr().err
    # a fresh build that does not deserialize either: an error, not a loop, and no entry left
    cache.entry(IDENTITY).write_bytes(b"garbage")
    bad = Builds(b"still garbage")
    with pytest.raises(EngineCacheError, match=r"the engine just built for tiny at 1080p does not deserialize"):
        cache.fetch(IDENTITY, build=bad, load=_load, what="tiny at 1080p")
    assert bad.count == 1
    assert not cache.entry(IDENTITY).exists()


def test_a_failed_build_leaves_no_entry(tmp_path):
    cache = EngineCache(tmp_path)

    def fail() -> bytes:
        raise RuntimeError("builder failed")

    with pytest.raises(RuntimeError):
        cache.fetch(IDENTITY, build=fail, load=_load, what="x")
    assert not list(tmp_path.glob("*.engine"))
    assert not list(tmp_path.glob("*.json"))


def test_a_full_disk_is_a_clear_error_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    cache = EngineCache(tmp_path)
    real = engine_cache.atomic_write
    calls = []

    def full_on_sidecar(path, write):
        calls.append(path)
        if path.suffix == ".json":  # the engine was written; its record does not fit

            def partial(tmp):
                tmp.write_text('{"ident')
                raise OSError(errno.ENOSPC, "No space left on device")

            return real(path, partial)
        return real(path, write)

    monkeypatch.setattr(engine_cache, "atomic_write", full_on_sidecar)
    with pytest.raises(EngineCacheError) as info:
        cache.fetch(IDENTITY, build=Builds(), load=_load, what="x")
    assert "the disk is full" in str(info.value)
    assert "VSPARAGON_CACHE" in str(info.value)
    assert [p.suffix for p in calls] == [".engine", ".json"]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == []


def test_an_unwritable_folder_falls_back_to_a_temporary_one(tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    cache = EngineCache(blocker / "engines")
    assert cache.folder != blocker / "engines"
    assert cache.folder.is_dir()
    cache.fetch(IDENTITY, build=Builds(), load=_load, what="x")
    EngineCache(blocker / "engines")
    err = capsys.readouterr().err
    assert err.count(f"vsparagon: the engine cache folder {blocker / 'engines'} is not writable") == 1
    assert "set VSPARAGON_CACHE to a writable folder" in err


def test_no_writable_folder_at_all_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(engine_cache.tempfile, "gettempdir", lambda: str(blocker))
    with pytest.raises(
        EngineCacheError, match=r"neither the engine cache folder .* can be written; set VSPARAGON_CACHE"
    ):
        EngineCache(blocker / "engines")


def test_timing_cache_per_version_and_gpu(tmp_path):
    cache = EngineCache(tmp_path)
    a = cache.timing_file(trt_version="10.7.0", gpu="NVIDIA GeForce RTX 4090", compute="8.9")
    assert a == tmp_path / "timing" / "trt10.7.0-NVIDIA_GeForce_RTX_4090-sm89.timing"
    assert cache.timing_file(trt_version="10.8.0", gpu="NVIDIA GeForce RTX 4090", compute="8.9") != a
    assert cache.timing_file(trt_version="10.7.0", gpu="NVIDIA L4", compute="8.9") != a
    assert cache.read_timing(a) == b""
    cache.write_timing(a, b"tactics")
    assert cache.read_timing(a) == b"tactics"


def test_threads_building_the_same_engine_build_it_once(tmp_path):
    cache, results = EngineCache(tmp_path), []
    lock = threading.Lock()
    count = [0]

    def slow() -> bytes:
        with lock:
            count[0] += 1
        time.sleep(0.3)
        return b"ENGINE slow"

    threads = [
        threading.Thread(target=lambda: results.append(cache.fetch(IDENTITY, build=slow, load=_load, what="x")))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [b"ENGINE slow"] * 3
    assert count[0] == 1


def test_a_second_process_waits_for_the_first_then_reuses_its_engine(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from vsparagon.runtime.engine_cache import EngineCache, EngineIdentity
        identity = EngineIdentity(**{dataclasses.asdict(IDENTITY)!r})
        def build():
            Path(sys.argv[1]).write_text("building")
            time.sleep(float(sys.argv[2]))
            print("built", file=sys.stderr)
            return b"ENGINE from " + sys.argv[1].encode()
        data = EngineCache(Path({str(tmp_path)!r})).fetch(identity, build=build, load=lambda d: d, what="tiny")
        print(data.decode())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    first = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "first"), "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (tmp_path / "first").exists():  # the first holds the lock and is building
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "second"), "0"], capture_output=True, text=True, env=env,
        timeout=60,
    )  # fmt: skip
    out, _err = first.communicate(timeout=60)
    assert out.strip() == f"ENGINE from {tmp_path / 'first'}"
    assert second.stdout.strip() == f"ENGINE from {tmp_path / 'first'}"  # loaded, not built
    assert not (tmp_path / "second").exists()
    assert "waiting for another process that is building tiny" in second.stderr


def test_list_and_clear(tmp_path):
    cache = EngineCache(tmp_path)
    cache.fetch(IDENTITY, build=Builds(), load=_load, what="x")
    ranged = dataclasses.replace(IDENTITY, profile=((1, 3, 64, 64), (1, 3, 256, 256), (1, 3, 512, 512)))
    cache.fetch(ranged, build=Builds(b"ENGINE two"), load=_load, what="x")
    timing = cache.timing_file(trt_version="10.7.0", gpu="NVIDIA GeForce RTX 4090", compute="8.9")
    cache.write_timing(timing, b"tactics")
    ort = tmp_path / "ort-trt" / "sub"
    ort.mkdir(parents=True)
    (ort / "TensorrtExecutionProvider_TRTKernel_graph_1_sm89.engine").write_bytes(b"x" * 100)
    old = cache.entry(IDENTITY)
    os.utime(old, (time.time() - 10 * 86400,) * 2)

    items = list_cached(tmp_path)
    assert [(i.kind, i.shape) for i in items] == [
        ("trt", "1x3x1080x1920"),
        ("trt", "1x3x64x64-1x3x512x512"),
        ("timing", "-"),
        ("ort-trt", "-"),
    ]
    first = items[0]
    assert (first.model, first.precision, first.trt_version) == ("tiny_x2.onnx", "fp16", "10.7.0")
    assert first.gpu == "NVIDIA GeForce RTX 4090 (8.9)"
    assert first.size == old.stat().st_size + old.with_suffix(".json").stat().st_size

    removed = clear_cached(tmp_path, older_than_days=7)
    assert [i.path for i in removed] == [old]
    assert not old.exists()
    assert not old.with_suffix(".json").exists()
    assert len(list_cached(tmp_path)) == 3
    assert len(clear_cached(tmp_path)) == 3
    assert list_cached(tmp_path) == []
    assert not (tmp_path / "ort-trt").exists()


def test_an_engine_without_a_readable_record_is_still_listed(tmp_path):
    (tmp_path / "stray.engine").write_bytes(b"?")
    (item,) = list_cached(tmp_path)
    assert item.model == "? (no readable record)"
    assert list_cached(tmp_path / "missing") == []


def test_clear_keeps_a_lock_that_a_build_holds(tmp_path):
    cache = EngineCache(tmp_path)
    cache.fetch(IDENTITY, build=Builds(), load=_load, what="x")
    lock = cache.entry(IDENTITY).with_suffix(".lock")
    assert lock.exists()
    with engine_cache._locked(lock, "x"):  # as a process building this engine right now holds it
        assert len(clear_cached(tmp_path)) == 1
        assert not cache.entry(IDENTITY).exists()
        assert lock.exists()  # a third process must still wait on it, not start the same build
    assert clear_cached(tmp_path) == []
    assert not lock.exists()  # free now, so the next clear takes it away
