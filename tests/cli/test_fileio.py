"""Outputs: only regular files are replaced, two specs never write one file, a killed
writer's temporary files are cleaned up, and an unwritable path is a `bad-output`
diagnostic (exit 1), never an internal error."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sample_specs import TINY

from cnnspec.cli.app import main
from cnnspec.fileio import TEMP_MARK, OutputError, atomic_write

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.cnn"
    path.write_text(TINY, encoding="utf-8")
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _symlink(path: Path) -> Path:
    real = path.with_name("real.py")
    real.write_text("# keep me\n", encoding="utf-8")
    path.symlink_to(real)
    return path


def _device(path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # like /dev/null
    return path


@pytest.mark.parametrize("command", ["compile", "draw"])
@pytest.mark.parametrize(
    "make, kind",
    [(_fifo, "FIFO"), (_symlink, "symbolic link"), (_device, "character device")],
    ids=["fifo", "symlink", "device"],
)
def test_a_target_that_is_not_a_regular_file_is_refused(
    capsys: pytest.CaptureFixture[str], spec: Path, tmp_path: Path, command: str, make, kind: str
) -> None:
    target = make(tmp_path / ("out.py" if command == "compile" else "out.dot"))
    before = target.lstat()
    code, err = run(capsys, command, str(spec), "-o", str(target))
    assert code == 1
    assert "error[bad-output]" in err and kind in err and "Traceback" not in err
    after = target.lstat()
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)  # untouched
    if kind == "symbolic link":
        assert (tmp_path / "real.py").read_text() == "# keep me\n"


def test_two_specs_that_would_write_one_file_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "net.cnn").write_text(TINY, encoding="utf-8")
    out = tmp_path / "out"
    a, b = str(tmp_path / "a" / "net.cnn"), str(tmp_path / "b" / "net.cnn")
    code, err = run(capsys, "compile", a, b, "-o", f"{out}/")
    assert code == 1 and "error[bad-output]" in err
    assert a in err and b in err
    assert not out.exists() or not list(out.iterdir())  # nothing written


def test_compiling_over_the_spec_itself_is_refused(
    capsys: pytest.CaptureFixture[str], spec: Path
) -> None:
    code, err = run(capsys, "compile", str(spec), "-o", str(spec))
    assert code == 1 and "error[bad-output]" in err
    assert spec.read_text(encoding="utf-8") == TINY


@pytest.mark.parametrize("command, suffix", [("compile", ".py"), ("draw", ".dot")])
def test_a_name_too_long_is_a_diagnostic(
    capsys: pytest.CaptureFixture[str], spec: Path, tmp_path: Path, command: str, suffix: str
) -> None:
    for target in (tmp_path / ("n" * 300 + suffix), tmp_path / ("d" * 300) / f"x{suffix}"):
        code, err = run(capsys, command, str(spec), "-o", str(target))
        assert code == 1, err
        assert "error[bad-output]" in err and "File name too long" in err


def test_a_missing_directory_is_a_bad_output_diagnostic(
    capsys: pytest.CaptureFixture[str], spec: Path, tmp_path: Path
) -> None:
    with pytest.raises(OutputError) as raised:
        atomic_write(tmp_path / "missing" / "x.py", "x = 1\n")
    (diag,) = raised.value.diagnostics
    assert diag.code == "bad-output" and "does not exist" in diag.message


KILLED_WRITER = """\
import os, signal, sys
from cnnspec import fileio
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write
fileio.atomic_write(sys.argv[1], "x = 2\\n")
"""


def test_a_killed_writer_leaves_a_named_temp_file_that_the_next_write_removes(
    tmp_path: Path,
) -> None:
    target = tmp_path / "net.py"
    target.write_text("x = 1\n", encoding="utf-8")
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(target)], check=False
    )
    assert killed.returncode == -9
    (left,) = [p for p in tmp_path.iterdir() if p != target]
    assert left.name.startswith(".net.py" + TEMP_MARK) and left.name.endswith(".tmp")
    assert target.read_text(encoding="utf-8") == "x = 1\n"  # the old file, whole
    # a live writer's temp file (this process's parent) is not touched
    live = tmp_path / left.name.replace(left.name.split(".")[-3], str(os.getppid()), 1)
    live.write_text("partial", encoding="utf-8")
    atomic_write(target, "x = 3\n")
    assert target.read_text(encoding="utf-8") == "x = 3\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, live.name])


def test_temp_files_of_other_targets_are_kept(tmp_path: Path) -> None:
    other = tmp_path / f".other.py{TEMP_MARK}0123456789ab.999999999.abc.tmp"
    other.write_text("", encoding="utf-8")
    atomic_write(tmp_path / "net.py", "x = 1\n")
    assert other.exists()
