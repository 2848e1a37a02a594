"""Hostile or broken data, packs and disks: refused with a short message, nothing damaged.

Through the command line (``hpa validate``, ``hpa pack``): exit 2, the file,
line or key named, no traceback, and the files a refused command could have
harmed byte-identical afterwards. Unusual but valid images are accepted.
``hpa pack`` runs in this process (:func:`cli`) but for one case: it imports
Lightning, which takes seconds per process. Where the CLI cannot reach the
case (a dying worker) the library is called directly.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from conftest import hpa
from helpers import channel_array, make_dataset
from hpa_classify.data import pack as pack_mod
from hpa_classify.data.io import image_size, read_channel
from hpa_classify.data.layout import load_dataset
from hpa_classify.data.pack import META_NAME, open_pack, pack
from hpa_classify.data.pack import _run as pack_run  # where the worker pool reads free space
from hpa_classify.data.pack import _write as pack_write  # where shards are allocated
from hpa_classify.errors import DataError, DiskFullError, HPAError
from hpa_classify.fileio import atomic_path, file_digest

#: 16 px samples are 1 KiB in a pack: 2 rows per shard
TWO_ROWS = 2 * 4 * 16 * 16


def fails_cleanly(result: subprocess.CompletedProcess[str], *needles: str, max_chars: int = 1500) -> None:
    """Exit 2, a short message holding every needle, no traceback."""
    assert result.returncode == 2, f"status {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr.replace("\n", ""), f"{needle!r} not in:\n{result.stderr}"
    assert len(result.stderr) < max_chars, f"{len(result.stderr)} characters:\n{result.stderr[:2000]}"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """``cli(*args)``: the ``hpa`` command line run in this process; returncode, stdout, stderr."""
    from hpa_classify import cli as cli_mod
    from hpa_classify.cli.app import console, err_console

    monkeypatch.setattr(err_console, "_width", 1000)
    monkeypatch.setattr(console, "_width", 1000)

    def run(*args: str | os.PathLike[str]) -> SimpleNamespace:
        monkeypatch.setattr(sys, "argv", ["hpa", *map(str, args)])
        try:
            cli_mod.main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    return run


def snapshot(*roots: Path) -> dict[str, bytes]:
    """Every file under ``roots`` (or the file itself), by path, with its bytes."""
    out = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        out.update({str(p): p.read_bytes() for p in paths})
    return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A Kaggle root of 6 samples of 16 px PNGs."""
    data = tmp_path / "data"
    make_dataset(data / "train.csv", data / "train", n=6, size=16)
    return data


def packed(root: Path, out: Path, workers: int = 1) -> Path:
    pack(load_dataset(root), out, size=16, workers=workers, shard_bytes=TWO_ROWS)
    return out


# ----------------------------------------------------------------------------- content fingerprints


def uncompressed_png(path: Path, image: np.ndarray) -> None:
    """A PNG whose size depends on its dimensions only, so an edit keeps the size."""
    assert cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 0])


def test_an_image_edited_in_place_is_packed_again_and_changes_the_fingerprint(root: Path, tmp_path: Path,
                                                                              cli) -> None:
    green = root / "train" / "s3_green.png"
    uncompressed_png(green, channel_array(16, 16, seed=1))
    before = load_dataset(root).fingerprint()
    out = tmp_path / "pack"
    args = ("pack", root, "--size", "16", "-o", out, "--workers", "2")
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    meta = json.loads((out / META_NAME).read_text())
    assert meta["source"]["files_sha256"] == before["files_sha256"]  # the workers hashed what was read
    assert all(len(s["inputs"]) == 64 for s in meta["shards"])
    assert "1 kept from an earlier run" in cli(*args).stdout

    size = green.stat().st_size
    uncompressed_png(green, channel_array(16, 16, seed=2))  # same size, other pixels
    assert green.stat().st_size == size
    after = load_dataset(root).fingerprint()
    assert after["files_sha256"] != before["files_sha256"] and after["csv_sha256"] == before["csv_sha256"]
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert "kept from an earlier run" not in again.stdout  # its one shard holds the edited image
    np.testing.assert_array_equal(open_pack(out).read(3), load_dataset(root).read(3, 16))

    # in 2-row shards, only the edited image's shard is packed again
    out2 = packed(root, tmp_path / "pack2", workers=2)
    uncompressed_png(green, channel_array(16, 16, seed=3))
    summary = pack(load_dataset(root), out2, size=16, workers=2, shard_bytes=TWO_ROWS)
    assert (summary.packed_shards, summary.kept_shards) == (1, 2)
    np.testing.assert_array_equal(open_pack(out2).read(3), load_dataset(root).read(3, 16))
    assert json.loads((out2 / META_NAME).read_text())["source"]["files_sha256"] == (
        load_dataset(root).fingerprint()["files_sha256"]
    )


def test_an_unchanged_pack_is_kept_whole(root: Path, tmp_path: Path) -> None:
    out = packed(root, tmp_path / "pack")
    summary = pack(load_dataset(root), out, size=16, workers=1, shard_bytes=TWO_ROWS)
    assert (summary.packed_shards, summary.kept_shards) == (0, 3)


def test_file_digest_is_the_one_hasher(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(3 << 20))
    assert file_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_digest(path, "blake2b") == hashlib.blake2b(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- the pack folder


def test_a_pack_into_itself_or_into_its_input_is_refused(root: Path, tmp_path: Path, cli) -> None:
    out = packed(root, tmp_path / "pack")
    before = snapshot(root, out)
    fails_cleanly(hpa("pack", out, "--size", "32", "-o", out), str(out), "is the source pack being packed")
    fails_cleanly(cli("pack", out, "--size", "16", "-o", out, "--force"), "is the source pack")
    fails_cleanly(cli("pack", root, "--size", "16", "-o", root / "train", "--force"),
                  "is the image folder being packed")
    fails_cleanly(cli("pack", root, "--size", "16", "-o", root / "train" / "cache"),
                  "is inside the image folder being packed")
    fails_cleanly(cli("pack", root / "train.csv", "--images", root / "train", "--size", "16", "-o", root,
                      "--force"), "holds the image folder being packed")
    assert snapshot(root, out) == before
    assert not (root / "train" / "cache").exists()


def test_force_replaces_only_a_pack_this_tool_wrote(root: Path, tmp_path: Path, cli) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "pack.json").write_text('{"format": "someone-else", "shards": []}')
    (foreign / "shard-00000.npy").write_bytes(b"precious")
    (foreign / "index.csv").write_text("mine\n")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    before = snapshot(foreign, plain)
    fails_cleanly(cli("pack", root, "--size", "16", "-o", foreign, "--force"), str(foreign),
                  "was not written by 'hpa pack'")
    fails_cleanly(cli("pack", root, "--size", "16", "-o", plain, "--force"), "is not a pack")
    fails_cleanly(cli("pack", root, "--size", "16", "-o", plain / "notes.txt"), "is not a folder")
    assert snapshot(foreign, plain) == before

    ours = packed(root, tmp_path / "ours")
    (ours / "notes.txt").write_text("kept")
    other = tmp_path / "other"
    make_dataset(other / "train.csv", other / "train", n=3, size=16)
    result = cli("pack", other, "--size", "16", "-o", ours, "--force")
    assert result.returncode == 0, result.stderr
    assert len(open_pack(ours)) == 3 and (ours / "notes.txt").read_text() == "kept"


# ----------------------------------------------------------------------------- pack.json


def _edit(meta: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    node = meta
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("rows_per_shard", _DELETE, "'rows_per_shard' is missing"),
        ("rows_per_shard", 0, "'rows_per_shard' must be an integer >= 1, got 0"),
        ("size", -16, "'size' must be an integer 16-4096, got -16"),
        ("n_samples", "6", "'n_samples' must be an integer >= 1, got '6'"),
        ("n_samples", True, "'n_samples' must be an integer"),
        ("shards", {}, "'shards' must be a non-empty list"),
        ("shards.0.rows", -2, "'shards[0].rows' must be an integer 1-2, got -2"),
        ("shards.2.rows", 1, "'shards[2].rows' must be 2, got 1"),
        ("shards.1.file", "../other/shard.npy", "'shards[1].file' must name a file inside the pack folder"),
        ("shards.1.file", "/etc/passwd", "'shards[1].file' must name a file inside the pack folder"),
        ("shards.1.file", "shard-00000.npy", "names a shard twice"),
        ("shards.1.file", 7, "'shards[1].file' must name a file"),
        ("shards.0.sha256", ["x"], "'shards[0].sha256' must be a SHA-256 hex digest or null"),
        ("complete", "yes", "'complete' must be true or false"),
        ("shards.0", "shard-00000.npy", "'shards[0]' must be a mapping"),
    ],
)
def test_a_bad_pack_index_names_the_file_and_key(root: Path, tmp_path: Path, key: str, value: object,
                                                  needle: str) -> None:
    out = packed(root, tmp_path / "pack")
    meta = json.loads((out / META_NAME).read_text())
    _edit(meta, key, value)
    (out / META_NAME).write_text(json.dumps(meta))
    with pytest.raises(DataError) as info:
        open_pack(out)
    message = str(info.value)
    assert str(out / META_NAME) in message and needle in message, message
    assert len(message) < 400


@pytest.mark.parametrize(
    "text",
    ["{not json", "[1, 2]", '{"format": "hpa-pack", "version": 1}', "[" * 100_000 + "]" * 100_000],
    ids=["not-json", "a-list", "no-keys", "deep"],
)
def test_a_broken_pack_index_through_the_cli(root: Path, tmp_path: Path, text: str, cli) -> None:
    out = packed(root, tmp_path / "pack")
    (out / META_NAME).write_text(text)
    before = snapshot(out)
    fails_cleanly(cli("pack", out, "--verify"), str(out / META_NAME))
    fails_cleanly(cli("pack", out, "--size", "16", "-o", tmp_path / "copy"), str(out / META_NAME))
    assert snapshot(out) == before


def test_a_shard_path_that_leaves_the_pack_is_refused(root: Path, tmp_path: Path, cli) -> None:
    out = packed(root, tmp_path / "pack")
    outside = tmp_path / "elsewhere.npy"
    os.replace(out / "shard-00001.npy", outside)
    os.symlink(outside, out / "shard-00001.npy")  # same name, but it leads out of the pack
    fails_cleanly(cli("pack", out, "--verify"), "'shards[1].file' must name a file inside the pack folder")


def test_a_shard_with_another_shape_is_refused_on_read(root: Path, tmp_path: Path) -> None:
    out = packed(root, tmp_path / "pack")
    np.save(out / "shard-00000.npy", np.zeros((2, 4, 32, 8), np.uint8))  # same bytes, other shape
    with pytest.raises(DataError, match=r"shard-00000.npy: pack shard holds uint8 \(2, 4, 32, 8\)"):
        open_pack(out).read(0)


# ----------------------------------------------------------------------------- full disk, dying workers


def test_too_little_free_space_is_refused_before_writing(root: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(pack_write.shutil, "disk_usage", lambda p: usage._replace(free=4096))
    out = tmp_path / "pack"
    with pytest.raises(DiskFullError, match=r"pack: the pack needs .* but only 4.0 KiB are free"):
        packed(root, out)
    assert not out.exists()


def test_no_space_while_writing_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    target.parent.mkdir()
    target.write_text("old")
    with pytest.raises(DiskFullError) as info, atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert str(target) in str(info.value) and "no space left" in str(info.value)
    assert target.read_text() == "old" and os.listdir(target.parent) == ["out.json"]


def test_no_space_in_hpa_pack_is_exit_2(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    """Every atomic write failing as on a full disk."""
    from hpa_classify import fileio

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.tempfile, "mkstemp", full)
    result = cli("pack", root, "--size", "16", "-o", tmp_path / "pk", "--workers", "1")
    fails_cleanly(result, "pk/index.csv: no space left on the disk while writing")


def test_a_shard_that_cannot_be_allocated_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pack_write.os, "posix_fallocate", full, raising=False)
    with pytest.raises(DiskFullError, match=r"shard-00000.npy: no space left on the disk"):
        pack_mod._create_shard(tmp_path / "shard-00000.npy", 2, 16)


def test_a_dead_worker_is_an_hpa_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(pack_run.shutil, "disk_usage", lambda p: usage._replace(free=1 << 20))
    assert isinstance(pack_mod._worker_died(tmp_path), DiskFullError)
    monkeypatch.setattr(pack_run.shutil, "disk_usage", lambda p: usage._replace(free=1 << 40))
    err = pack_mod._worker_died(tmp_path)
    assert isinstance(err, HPAError) and "run the same command again to resume" in str(err)


WORKERS_SCRIPT = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from hpa_classify.data.workers import die_with_parent

    def busy(folder):
        open(os.path.join(folder, str(os.getpid())), "w").close()
        time.sleep(120)

    if __name__ == "__main__":
        ctx = multiprocessing.get_context(sys.argv[2])
        init = die_with_parent if sys.argv[3] == "watch" else None
        pool = ProcessPoolExecutor(2, mp_context=ctx, initializer=init)
        for _ in range(2):
            pool.submit(busy, sys.argv[1])
        time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_end_when_the_parent_is_killed(tmp_path: Path, method: str) -> None:
    script = tmp_path / "workers.py"
    script.write_text(WORKERS_SCRIPT)
    pids = tmp_path / "pids"
    pids.mkdir()
    parent = subprocess.Popen([sys.executable, str(script), str(pids), method, "watch"])
    try:
        deadline = time.monotonic() + 60
        while len(os.listdir(pids)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = [int(p) for p in os.listdir(pids)]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in workers if _alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their killed parent"


# ----------------------------------------------------------------------------- CSV limits


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("Id,Target\ns0,0\ns1," + "1 " * 70_000 + "\n", ("line 3", "a field longer than 131,072 characters")),
        (",".join(f"c{i}" for i in range(20_000)) + "\ns0\n", ("line 1", "no 'Id' column", "20000 columns")),
        ('Id,Target\ns0,0\ns1,"1\ns2,2\ns3,3\n', ("line 3", "a quote (\") opened on this line is never closed")),
        ('Id,Target,Notes\ns0,"0\n1",x\ns1,1,y\n', ("line 2", "the Target runs on to line 3")),
        ("Id,Target\ns0,0\ns1," + "x" * 100_000 + "\n", ("row 3 (Id s1)", "(100000 characters) is not a list of class ids")),
        ("Id,Target\n" + "s" * 100_000 + ",0\ns1,1\n", ("(100000 characters)", "missing red channel")),
    ],
    ids=["long-field", "wide-header", "unclosed-quote", "multiline-target", "long-target", "long-id"],
)
def test_hostile_csv_is_a_short_data_error(root: Path, text: str, needles: tuple[str, ...]) -> None:
    csv_path = root / "train.csv"
    csv_path.write_text(text)
    result = hpa("validate", root)
    if "missing red channel" in needles:  # a long Id is an Id without images, named briefly
        fails_cleanly(result, *needles)
    else:
        fails_cleanly(result, str(csv_path), *needles, max_chars=800)


# ----------------------------------------------------------------------------- valid images accepted


def validates(root: Path) -> None:
    result = hpa("validate", root, "--deep")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all samples valid" in result.stdout


def jpeg_with_big_app_segments(image: np.ndarray, n_bytes: int) -> bytes:
    """A JPEG whose frame header comes after ``n_bytes`` of APP2 (ICC profile) segments."""
    data = cv2.imencode(".jpg", image)[1].tobytes()
    segments = b""
    while len(segments) < n_bytes:
        payload = b"ICC_PROFILE\x00" + os.urandom(65000)
        segments += b"\xff\xe2" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segments + data[2:]


def test_jpeg_with_its_frame_header_after_64_kib_is_accepted(root: Path, tmp_path: Path) -> None:
    red = root / "train" / "s1_red.png"
    red.unlink()
    jpg = root / "train" / "s1_red.jpg"
    jpg.write_bytes(jpeg_with_big_app_segments(channel_array(16, 16, seed=4), 200_000))
    assert image_size(jpg) == (16, 16) and read_channel(jpg).shape == (16, 16)
    validates(root)


def test_trailing_bytes_after_the_end_are_accepted(root: Path) -> None:
    png = root / "train" / "s2_blue.png"
    png.write_bytes(png.read_bytes() + b"\x00trailing data from a scanner" * 10)
    jpg = root / "train" / "s0_green.jpg"
    (root / "train" / "s0_green.png").unlink()
    jpg.write_bytes(cv2.imencode(".jpg", channel_array(16, 16, seed=5))[1].tobytes() + os.urandom(5000))
    validates(root)


def test_a_truncated_jpeg_is_still_refused(root: Path) -> None:
    jpg = root / "train" / "s0_green.jpg"
    (root / "train" / "s0_green.png").unlink()
    data = jpeg_with_big_app_segments(channel_array(64, 64, seed=5), 70_000)
    jpg.write_bytes(data[: len(data) - 300])
    fails_cleanly(hpa("validate", root), "s0_green.jpg", "truncated JPEG")


def test_tiff_that_only_pillow_decodes_is_accepted(root: Path) -> None:
    from PIL import Image

    (root / "train" / "s3_yellow.png").unlink()
    Image.fromarray(channel_array(16, 16, seed=6)).save(root / "train" / "s3_yellow.tif", compression="tiff_lzw")
    validates(root)


def test_tifffile_log_lines_do_not_come_before_the_message(root: Path) -> None:
    entries = [(256, 3, 1, 16), (257, 3, 1, 16), (258, 3, 1, 8), (262, 3, 1, 1),
               (273, 4, 2, 99_999), (277, 3, 1, 1), (278, 3, 1, 16), (279, 4, 2, 99_999)]  # offsets past the end
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + bytes(4)
    (root / "train" / "s1_red.png").unlink()
    (root / "train" / "s1_red.tif").write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + bytes(256))
    for args in ((), ("--deep",)):
        result = hpa("validate", root, *args)
        fails_cleanly(result, "s1_red.tif", "not a readable TIFF")
        assert result.stderr.startswith("error:"), result.stderr


def test_an_oversized_image_file_is_refused_before_reading(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpa_classify.data.io import _headers  # where the limit is read

    monkeypatch.setattr(_headers, "MAX_FILE_BYTES", 100)
    png = root / "train" / "s0_red.png"
    with pytest.raises(DataError, match=r"s0_red.png: .*bytes, more than the 100 accepted"):
        read_channel(png)
    with pytest.raises(DataError, match=r"s0_red.png: .*bytes, more than the 100 accepted"):
        image_size(png)


def test_fingerprint_of_names_and_sizes_for_older_run_records(root: Path) -> None:
    import hashlib

    ds = load_dataset(root)
    old = hashlib.sha256()
    for files in ds.files:
        for c in ("red", "green", "blue", "yellow"):
            old.update(f"{files[c].name}\t{files[c].stat().st_size}\n".encode())
    legacy = ds.fingerprint(content=False)
    assert legacy["files_sha256"] == old.hexdigest() and legacy["files_hashed"] == "name, size"
    assert ds.fingerprint()["files_sha256"] != legacy["files_sha256"]
