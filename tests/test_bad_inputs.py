"""A corpus of bad inputs, each through the ``hpa`` command line.

Every case is answered by a short message that names the file, row or key, exit
status 2, no traceback, and nothing written; inputs that are merely unusual (a
BOM, CRLF, extra columns, 16-bit or RGB PNGs, unrelated files) are accepted.
Cases already in ``test_cli_e2e.py`` (a PNG cut short at its end, a zero-byte
channel in ``predict``, a missing channel, a duplicate Id, a class id of 31, an
unknown ``--set`` key, an empty folder as a run) are not repeated here. Data
cases go through ``hpa validate`` (fast: no torch), and through ``hpa train``
where it matters that nothing is written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import hpa
from helpers import channel_array, make_dataset, write_image
from hpa_classify.config import load_config, save_config


def kaggle_root(tmp_path: Path, n: int = 4) -> Path:
    """``root/train.csv`` with ``n`` samples s0... of 16 px PNGs in ``root/train``."""
    root = tmp_path / "data"
    make_dataset(root / "train.csv", root / "train", n=n, size=16)
    return root


def fails_cleanly(result, *needles: str, nothing_at: Path | None = None) -> None:
    """Exit 2, a short message holding every needle, no traceback, nothing written."""
    assert result.returncode == 2, f"status {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in:\n{result.stderr}"
    assert len(result.stderr.splitlines()) <= 12, result.stderr
    if nothing_at is not None:
        assert not nothing_at.exists(), f"{nothing_at} was written"


def train_fails(root: Path, tmp_path: Path, *needles: str, args: tuple[str, ...] = ()) -> None:
    run = tmp_path / "run"
    fails_cleanly(hpa("train", root, "--out", run, *args), *needles, nothing_at=run)


def validates(root: Path | str, *args: str, n: int = 4) -> None:
    result = hpa("validate", root, "--deep", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{n} samples" in result.stdout and "all samples valid" in result.stdout


# ----------------------------------------------------------------------------- images


def test_png_cut_inside_its_header(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    png = root / "train" / "s2_blue.png"
    png.write_bytes(png.read_bytes()[:20])
    train_fails(root, tmp_path, "s2", "s2_blue.png", "PNG header is truncated")


def test_png_with_a_corrupt_chunk_length(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    png = root / "train" / "s1_green.png"
    data = bytearray(png.read_bytes())
    data[33:37] = (0x7FFFFFF0).to_bytes(4, "big")  # the first chunk after IHDR claims 2 GB
    png.write_bytes(bytes(data))
    fails_cleanly(hpa("validate", root, "--deep"), "s1_green.png", "corrupt PNG", "needs 2147483632 bytes")


def test_png_header_claiming_a_gigapixel_image(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    png = root / "train" / "s0_red.png"
    data = bytearray(png.read_bytes())
    data[16:24] = (60000).to_bytes(4, "big") * 2  # 60000 x 60000 px
    png.write_bytes(bytes(data))
    fails_cleanly(hpa("validate", root), "s0_red.png", "60000x60000 px", "corrupt header?")


def test_16_bit_and_rgb_pngs_are_converted(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    write_image(root / "train" / "s0_green.png", channel_array(16, 16, seed=1, dtype=np.uint16))
    bgr = np.zeros((16, 16, 3), np.uint8)
    bgr[..., 2] = channel_array(16, 16, seed=2)  # a stain rendered in red
    write_image(root / "train" / "s1_red.png", bgr)
    validates(root)


def test_two_channel_tiff_is_refused(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    (root / "train" / "s3_yellow.png").unlink()
    tiff = root / "train" / "s3_yellow.tif"
    tifffile.imwrite(tiff, np.zeros((16, 16, 2), np.uint8), photometric="minisblack", planarconfig="contig")
    train_fails(root, tmp_path, "s3_yellow.tif", "2 samples per pixel")


def test_channels_of_different_sizes(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    write_image(root / "train" / "s2_yellow.png", channel_array(16, 24))
    train_fails(root, tmp_path, "s2", "channels differ in size", "yellow 24x16")


def test_file_that_is_not_an_image(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    (root / "train" / "s1_red.png").write_bytes(b"GIF89a" + bytes(64))
    fails_cleanly(hpa("validate", root), "s1_red.png", "not a PNG, JPEG or TIFF")


def test_unrelated_files_in_the_image_folder_are_ignored(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    images = root / "train"
    (images / "notes.txt").write_text("hello")
    (images / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (images / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (images / "s0_red.png.bak").write_bytes(b"junk")
    (images / "s0_extra.png").write_bytes(b"junk")
    (images / "overview.png").write_bytes(b"junk")
    (images / "s9_green.png").write_bytes(b"junk")  # an Id the CSV does not list
    (images / "subfolder").mkdir()
    (images / "subfolder" / "s0_red.png").write_bytes(b"junk")
    validates(root)


def test_non_utf8_file_name_in_the_image_folder_is_ignored(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    folder = os.fsencode(root / "train")
    with open(folder + b"/s0_red\xff\xfe.png", "wb") as fh:
        fh.write(b"junk")
    with open(folder + b"/\xe9t\xe9_green.png", "wb") as fh:
        fh.write(b"junk")
    validates(root)


def test_non_utf8_folder_name_is_shown_escaped(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    odd = tmp_path / os.fsdecode(b"caf\xe9")
    root.rename(odd)
    (odd / "train" / "s2_red.png").write_bytes(b"")
    result = subprocess.run([sys.executable, "-m", "hpa_classify.cli", "validate", odd],
                            capture_output=True, env=dict(os.environ, COLUMNS="200", NO_COLOR="1"))
    decoded = subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode("utf-8", "backslashreplace"),
        result.stderr.decode("utf-8"),  # the error message itself is plain UTF-8
    )
    fails_cleanly(decoded, "caf\\xe9", "s2_red.png", "empty file")


# ----------------------------------------------------------------------------- folders


def test_empty_image_folder(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    for path in (root / "train").iterdir():
        path.unlink()
    train_fails(root, tmp_path, str(root / "train"), "no images for the 4 samples", "the folder is empty")


def test_image_folder_of_other_samples(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    (root / "train.csv").write_text("Id,Target\nx0,1\nx1,2\n")
    fails_cleanly(hpa("validate", root), "no images for the 2 samples", "x0_green.png", "--images")


def test_unreadable_image_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("runs as root, where chmod 000 does not stop reads; "
                    "test_unreadable_files_in_process simulates the error instead")
    root = kaggle_root(tmp_path)
    png = root / "train" / "s1_blue.png"
    png.chmod(0)
    try:
        fails_cleanly(hpa("validate", root), "s1_blue.png", "permission denied")
    finally:
        png.chmod(0o644)


def run_cli_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                       *args: str) -> tuple[int, str]:
    from hpa_classify import cli

    monkeypatch.setattr(sys, "argv", ["hpa", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    return int(info.value.code), capsys.readouterr().err.replace("\n", "")  # undo the wrapping


def test_unreadable_files_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The OSError a file without read permission gives, raised where the files are opened."""
    import builtins
    import pathlib

    from hpa_classify.data.io import _headers as layout  # where image headers are opened

    root = kaggle_root(tmp_path)
    locked_png = root / "train" / "s1_blue.png"
    real_open, real_read_bytes = builtins.open, pathlib.Path.read_bytes

    def guarded_open(file, *args, **kwargs):
        if Path(file) == locked_png:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def guarded_read_bytes(self: Path) -> bytes:
        if self == locked_png or self == root / "train.csv" and locked_csv:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    locked_csv = False
    monkeypatch.setattr(layout, "open", guarded_open, raising=False)
    monkeypatch.setattr(pathlib.Path, "read_bytes", guarded_read_bytes)

    code, err = run_cli_in_process(monkeypatch, capsys, "validate", str(root))
    assert code == 2
    assert "s1_blue.png: permission denied" in err and "Traceback" not in err

    monkeypatch.setattr(layout, "open", real_open, raising=False)
    code, err = run_cli_in_process(monkeypatch, capsys, "validate", str(root), "--deep")
    assert code == 2
    assert "s1_blue.png: cannot read (Permission denied)" in err

    locked_csv = True
    code, err = run_cli_in_process(monkeypatch, capsys, "validate", str(root))
    assert code == 2
    assert "train.csv: cannot read (Permission denied)" in err


# ----------------------------------------------------------------------------- CSV


def test_csv_without_header(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    (root / "train.csv").write_text("s0,0\ns1,1\ns2,2\ns3,3\n")
    train_fails(root, tmp_path, str(root / "train.csv"), "no 'Id' column", "the first line must name the columns")


@pytest.mark.parametrize(
    "text",
    [
        "Id,Target,Notes,Plate\ns0,0,a,1\ns1,1,\"b, c\",2\ns2,2,,3\ns3,3,d,4\n",  # extra columns
        "\ufeffId,Target\ns0,0\ns1,1\ns2,2\ns3,3\n",  # UTF-8 BOM (Excel)
        "Id,Target\r\ns0,0\r\ns1,1\r\ns2,2\r\ns3,3\r\n",  # Windows line endings
    ],
    ids=["extra-columns", "bom", "crlf"],
)
def test_csv_variants_are_accepted(tmp_path: Path, text: str) -> None:
    root = kaggle_root(tmp_path)
    (root / "train.csv").write_bytes(text.encode("utf-8"))
    validates(root)


@pytest.mark.parametrize(
    ("target", "fragment"),
    [("-1", "class -1 out of range"), ("", "empty Target"), ("nucleus", "'nucleus' is not a class id"),
     ("1;2", "'1;2' is not a class id")],
    ids=["negative", "empty", "word", "semicolon"],
)
def test_bad_target_names_line_and_id(tmp_path: Path, target: str, fragment: str) -> None:
    root = kaggle_root(tmp_path)
    (root / "train.csv").write_text(f"Id,Target\ns0,0\ns1,1\ns2,{target}\ns3,3\n")
    fails_cleanly(hpa("validate", root), "row 4 (Id s2)", str(root / "train.csv"), fragment)


def test_empty_and_header_only_csv(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    csv_path = root / "train.csv"
    csv_path.write_bytes(b"")
    train_fails(root, tmp_path, str(csv_path), "empty CSV")
    csv_path.write_text("Id,Target\n")
    fails_cleanly(hpa("validate", root), str(csv_path), "header but no rows")


def test_csv_that_is_not_utf8(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    (root / "train.csv").write_bytes("Id,Target\ns0,0\nsé,1\n".encode("latin-1"))
    fails_cleanly(hpa("validate", root), str(root / "train.csv"), "not UTF-8 text")


# ----------------------------------------------------------------------------- command line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("train", "--no-such-flag", "x"), "No such option: --no-such-flag"),
        (("trian",), "No such command 'trian'"),
        (("train",), "Missing argument"),
        (("synth", "out", "--size", "big"), "Invalid value for '--size'"),
    ],
)
def test_command_line_mistakes_are_usage_errors(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    result = hpa(*args, cwd=tmp_path)
    fails_cleanly(result, needle, nothing_at=tmp_path / "out")
    assert "--help" in result.stderr  # points at the help text


# ----------------------------------------------------------------------------- config files


@pytest.mark.parametrize(
    ("yaml_text", "needles"),
    [
        ("train:\n  epoch: 3\n", ("unknown config key 'train.epoch'", "did you mean 'train.epochs'")),
        ("data:\n  size: big\n", ("bad value for 'data.size'",)),
        ("model: [resnet18\n", ("not valid YAML",)),
    ],
    ids=["unknown-key", "wrong-type", "not-yaml"],
)
def test_bad_config_file(tmp_path: Path, yaml_text: str, needles: tuple[str, ...]) -> None:
    root = kaggle_root(tmp_path)
    config = tmp_path / "experiment.yaml"
    config.write_text(yaml_text)
    train_fails(root, tmp_path, str(config), *needles, args=("--config", str(config)))


# ----------------------------------------------------------------------------- run folders


def test_run_folder_that_does_not_exist(tmp_path: Path) -> None:
    fails_cleanly(hpa("evaluate", tmp_path / "runs" / "nope"), "no such run directory")


def test_run_folder_with_a_broken_config(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: x\ntrain:\n  epochs: many\n")
    fails_cleanly(hpa("evaluate", run), str(run / "config.yaml"), "train.epochs")


def test_run_folder_that_never_finished(tmp_path: Path) -> None:
    root = kaggle_root(tmp_path)
    run = tmp_path / "run"
    save_config(load_config("demo-cpu"), run / "config.yaml")
    out = tmp_path / "submission.csv"
    fails_cleanly(hpa("predict", run, root, "-o", out), "thresholds.json", nothing_at=out)
    assert not out.with_name("submission_probs.csv").exists()
