"""Hostile and broken input (issue 9): what cnnspec reads, how far it goes, what it echoes.

Each test holds one promise of docs/language.md "Limits": a file is read only when it is
a regular UTF-8 file of at most 16 MiB, numbers and nesting have bounds that end in a
diagnostic (never an internal error or minutes of work), absurd parameter counts are
refused, and diagnostics show a spec's text escaped and cut to a window.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cnnspec.model
import cnnspec.syntax.parser
from cnnspec.cli.app import main
from cnnspec.diagnostics import (
    EXCERPT_WIDTH,
    MAX_SHOWN,
    Diagnostic,
    DiagnosticError,
    Span,
    error,
    escape,
    render_human,
    warning,
)
from cnnspec.model import check_program, load_program_from, read_file
from cnnspec.syntax import lalr
from cnnspec.syntax.loader import MAX_FILE_BYTES, Unreadable, load_program
from cnnspec.syntax.parser import parse

NET = "network N {\n    input image: 3 x 8 x 8\n    relu\n}\n"
PACKAGE_ROOT = Path(cnnspec.model.__file__).resolve().parents[1]  # the cnnspec under test
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="devices and FIFOs")


def check_cli(
    argv: list[str], capsys: pytest.CaptureFixture[str], expect: int = 1
) -> tuple[str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == expect, err
    assert "Traceback" not in err
    assert "error[internal]" not in err + out
    return out, err


def diagnostics_of(text: str, files: dict[str, str] | None = None) -> list[str]:
    """``code: message`` of each diagnostic of checking ``text`` as main.cnn."""
    every = {"main.cnn": text, **(files or {})}
    try:
        check_program(load_program("main.cnn", text, every.get))
    except DiagnosticError as exc:
        return [f"{d.code}: {d.message}" for d in exc.diagnostics]
    return []


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


# --------------------------------------------------------------- numbers (item 1)


@pytest.mark.parametrize("digits", [309, 350, 400])
@pytest.mark.parametrize(
    "template",
    [
        "network N {{ input x: 3 x 8 x 8\n conv({n}, 1) }}",
        "network N {{ input x: 3 x {n} x 8\n conv(3, 1) }}",
        "network N {{ input x: 3 x ({n}) x 8\n relu }}",
    ],
    ids=["argument", "dimension", "dimension-expression"],
)
def test_a_literal_too_large_for_a_float_is_a_diagnostic(digits: int, template: str) -> None:
    # 10**309 overflowed converting to a float (OverflowError: an internal error, exit 3)
    found = diagnostics_of(template.format(n="9" * digits))
    assert found == ["too-large: this number is too large"]


def test_the_cli_exits_1_on_a_309_digit_number(capsys: pytest.CaptureFixture[str]) -> None:
    Path("big.cnn").write_text(f"network N {{ input x: 3 x 8 x 8\n conv({'9' * 309}, 1) }}\n")
    _, err = check_cli(["check", "big.cnn"], capsys)
    assert "error[too-large]: this number is too large" in err


# ------------------------------------------------------------ file names (item 2)


def test_a_use_with_a_nul_character(capsys: pytest.CaptureFixture[str]) -> None:
    Path("main.cnn").write_text('use "\\x00"\n' + NET)
    _, err = check_cli(["check", "main.cnn"], capsys)
    assert "error[missing-file]: cannot read `\\x00`: the name contains a NUL character" in err


def test_a_use_3000_directories_deep(capsys: pytest.CaptureFixture[str]) -> None:
    Path("main.cnn").write_text('use "' + "a/" * 3000 + 'a.cnn"\n' + NET)
    _, err = check_cli(["check", "main.cnn"], capsys)
    assert "error[missing-file]: cannot read `a/a/a/" in err
    assert "the name is too long" in err or "no such file" in err
    assert max(len(line) for line in err.splitlines()) < 200  # the name is shortened


def test_an_entry_file_name_too_long(capsys: pytest.CaptureFixture[str]) -> None:
    _, err = check_cli(["check", "x" * 300 + ".cnn"], capsys)
    assert "error[missing-file]: cannot read `xxx" in err
    assert "the name is too long for the file system" in err


# ---------------------------------------------------- what is read (items 3 and 4)


def check_guarded(*files: str) -> str:
    """``cnnspec check`` in a process of its own, which may neither hang nor grow:
    reading a device or a FIFO did one or the other."""
    import resource
    import subprocess

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2**31, 2**31))

    proc = subprocess.run(
        [sys.executable, "-m", "cnnspec", "check", *files],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=limit_memory,
        env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(PACKAGE_ROOT)},
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "error[internal]" not in proc.stderr
    return proc.stderr


@POSIX
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_use_of_a_device_is_refused(device: str) -> None:
    if not Path(device).exists():
        pytest.skip(f"no {device}")
    Path("main.cnn").write_text(f'use "{device}"\n' + NET)
    err = check_guarded("main.cnn")
    assert f"error[unreadable-file]: cannot read `{device}`: it is a character device" in err


@POSIX
def test_a_use_of_a_fifo_is_refused_without_waiting() -> None:
    os.mkfifo("pipe.cnn")
    Path("main.cnn").write_text('use "pipe.cnn"\n' + NET)
    err = check_guarded("main.cnn")
    assert "error[unreadable-file]: cannot read `pipe.cnn`: it is a FIFO (named pipe)" in err


@POSIX
def test_an_entry_file_that_is_a_device_or_a_fifo() -> None:
    os.mkfifo("pipe.cnn")
    zero = Path("/dev/zero").exists()
    err = check_guarded("pipe.cnn", *["/dev/zero"] * zero)
    assert "error[unreadable-file]: cannot read `pipe.cnn`: it is a FIFO" in err
    if zero:
        assert "cannot read `/dev/zero`: it is a character device, not a regular file" in err


def test_a_directory_is_not_a_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    Path("specs.cnn").mkdir()
    _, err = check_cli(["check", "specs.cnn"], capsys)
    assert "error[unreadable-file]: cannot read `specs.cnn`: it is a directory" in err


def _sparse(path: str, size: int) -> None:
    with Path(path).open("wb") as handle:
        handle.truncate(size)  # no disk space used: the size alone is refused


def test_a_file_over_16_mib_is_refused_before_it_is_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _sparse("huge.cnn", 2**30)  # 1 GiB: took 50 s and 4.2 GB, and echoed it all
    Path("main.cnn").write_text('use "huge.cnn"\n' + NET)
    start = time.perf_counter()
    _, err = check_cli(["check", "main.cnn"], capsys)
    _, err2 = check_cli(["check", "huge.cnn"], capsys)
    assert time.perf_counter() - start < 5
    assert "error[too-large]: cannot read `huge.cnn`: it has 1,073,741,824 bytes" in err
    assert "the limit is 16 MiB" in err
    assert "error[too-large]: cannot read `huge.cnn`: it has 1,073,741,824 bytes" in err2
    _sparse("limit.cnn", MAX_FILE_BYTES)
    assert not isinstance(read_file("limit.cnn"), Unreadable)  # 16 MiB itself is read


def test_the_read_itself_stops_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that says it is small (a growing file, /proc) is still read no further."""
    _sparse("grows.cnn", MAX_FILE_BYTES + 10)
    real_stat, real_fstat = os.stat, os.fstat

    def small(result: os.stat_result) -> os.stat_result:
        return os.stat_result((*result[:6], 10, *result[7:10]))

    monkeypatch.setattr(Path, "stat", lambda self, **kw: small(real_stat(self, **kw)))
    monkeypatch.setattr(os, "fstat", lambda fd: small(real_fstat(fd)))
    assert read_file("grows.cnn") == Unreadable("too-large", "it is over 16 MiB")


def test_a_long_line_is_shown_as_a_window(capsys: pytest.CaptureFixture[str]) -> None:
    line = "    " + "relu -> " * 20_000 + "relu -> ? -> " + "relu -> " * 20_000 + "relu"
    Path("long.cnn").write_text("network N {\n    input x: 3 x 8 x 8\n" + line + "\n}\n")
    _, err = check_cli(["check", "long.cnn"], capsys)
    rendered = err.splitlines()
    assert max(len(row) for row in rendered) < 2 * EXCERPT_WIDTH
    source = next(r for r in rendered if r.startswith("3 | "))
    caret = next(r for r in rendered if "^" in r and "not valid here" in r)
    assert source.startswith("3 | …") and source.endswith("…")
    assert source[caret.index("^")] == "?"


# -------------------------------------------------------------- nesting (item 5)


def test_deep_nesting_is_refused_at_once_without_lark(monkeypatch: pytest.MonkeyPatch) -> None:
    """100 lines of 600-deep `if true {` took 9.5 s: Lark parsed it all again."""

    def no_lark(*args: object) -> None:
        raise AssertionError("a too-deep spec must not be parsed again by Lark")

    monkeypatch.setattr(cnnspec.syntax.parser, "_lark_tree", no_lark)
    text = "network N {\n input x: 3 x 8 x 8\n" + ("if true { " * 600 + "\n") * 100 + "}\n"
    start = time.perf_counter()
    with pytest.raises(DiagnosticError) as exc:
        parse(text, "deep.cnn")
    assert time.perf_counter() - start < 2
    (d,) = exc.value.diagnostics
    assert d.message == "the spec is nested too deeply to parse"
    assert (d.span.line, d.span.col) > (3, 1)  # where it got too deep, not the file's start
    assert str(lalr.MAX_DEPTH) in d.hints[0]


def test_nesting_just_below_the_limit_still_parses() -> None:
    parse("network N { input i: 3x8x8\n" + "if true {" * 160 + "relu" + "}" * 160 + "}")


def _residuals(depth: int) -> str:
    body = "conv(8, 3, padding = 1)"
    for _ in range(depth):
        body = f"residual {{ {body} }}"
    return body


def test_residuals_nested_140_deep_check_and_compile(tmp_path: Path) -> None:
    """Each level of nesting costs the walk (cnnspec/graph/walk.py) a few Python frames:
    6 in the checker, as many as before the walk was shared (8 made this fail). In a
    fresh process, as a user runs it."""
    spec = tmp_path / "deep.cnn"
    spec.write_text(f"network N {{\n    input x: 8 x 8 x 8\n    {_residuals(140)}\n}}\n")
    for argv in (["check"], ["compile", "--stdout"]):
        done = subprocess.run(
            [sys.executable, "-m", "cnnspec", *argv, str(spec)],
            check=False,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr


def test_nesting_past_the_recursion_limit_is_a_diagnostic(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A network nested past Python's limit is `too-large`, also where the block check
    walks it after an error (an internal error when that walk became the shared one,
    found by the fuzzer); so is an unused block nested as deep."""
    Path("deep.cnn").write_text(
        f"network N {{\n    input x: 8 x 8 x 8\n    {_residuals(240)}\n    rleu\n}}\n"
    )
    _, err = check_cli(["check", "deep.cnn"], capsys)
    assert "the spec is nested too deeply to check" in err, err
    Path("lib.cnn").write_text(f"block deep() {{\n    {_residuals(240)}\n}}\n")
    _, err = check_cli(["check", "lib.cnn"], capsys)
    assert "error[too-large]: block `deep` is nested too deeply to check" in err


# --------------------------------------------------------- many diagnostics (item 6)


def _many(count: int) -> tuple[list[Diagnostic], dict[str, str]]:
    text = "".join(f"t{i} = relu\n" for i in range(count))
    diags = [
        warning("unused-tensor", Span("m.cnn", i + 1, 1, i + 1, 3), "unused", "here")
        for i in range(count)
    ]
    return diags, {"m.cnn": text}


def test_rendering_is_linear_in_the_number_of_diagnostics() -> None:
    """32,000 diagnostics of a 32,000-line file (each rendering split the file: minutes)."""
    diags, sources = _many(32_000)
    start = time.perf_counter()
    rendered = render_human(diags, sources)
    assert time.perf_counter() - start < 5
    assert rendered.count("warning[unused-tensor]") == 32_000
    assert "32000 | t31999 = relu" in rendered


def test_the_human_format_shows_at_most_a_few_hundred(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = "".join(f"    t{i} = relu\n" for i in range(1_000)) + "    foo(1)\n"
    Path("many.cnn").write_text("network N {\n    input x: 3 x 8 x 8\n" + lines + "}\n")
    _, err = check_cli(["check", "many.cnn"], capsys)
    assert err.count("warning[unused-tensor]") == MAX_SHOWN - 1
    assert err.count("error[unknown-layer]") == 1  # errors come first, whatever their line
    assert f"... and {1_000 - MAX_SHOWN + 1:,} more (801 warnings;" in err
    assert err.endswith("failed: 1 file checked, 1 error, 1000 warnings\n")
    out, _ = check_cli(["check", "--format", "json", "many.cnn"], capsys)
    assert len(json.loads(out)["diagnostics"]) == 1_001  # JSON keeps them all


# ------------------------------------------------------------- parameters (item 7)


def test_absurd_parameter_counts_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    Path("huge.cnn").write_text("network N {\n    input x: 1099511627776\n    linear(1048576)\n}\n")
    _, err = check_cli(["check", "huge.cnn"], capsys)
    assert "error[too-large]: a layer with 1,152,921,504,607,895,552 parameters" in err
    check_cli(["compile", "huge.cnn", "--stdout"], capsys)
    # the example: 1.2e24 weights, refused already by PyTorch's 32-bit size limit
    Path("issue.cnn").write_text(
        "network N {\n    input x: 1099511627776\n    linear(1099511627776)\n}\n"
    )
    _, err = check_cli(["check", "issue.cnn"], capsys)
    assert "error[bad-argument]" in err and "2**31 - 1" in err


def test_a_real_large_network_is_not_refused() -> None:
    # VGG-16's classifier: 102,764,544 weights in one layer
    assert not diagnostics_of("network N { input x: 25088\n linear(4096) -> linear(1000) }")


# ------------------------------------------------------------ encodings (items 8, 9)


def test_a_byte_order_mark_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    Path("bom.cnn").write_bytes(b"\xef\xbb\xbf" + NET.encode())
    check_cli(["check", "bom.cnn"], capsys, expect=0)
    Path("bad.cnn").write_bytes(b"\xef\xbb\xbfnetwork N { input x: 3 x 8 x 8 foo }\n")
    _, err = check_cli(["check", "bad.cnn"], capsys)
    assert "bad.cnn:1:32: error[unknown-layer]" in err  # columns as an editor counts them
    assert "\ufeff" not in err


def test_a_byte_order_mark_in_given_text_keeps_the_spans_right() -> None:
    assert cnnspec.model.load("\ufeff" + NET).name == "N"
    text = "\ufeffnetwork N { input x: 3 x 8 x 8 foo }\n"
    module = parse(text, "t.cnn")
    span = module.networks[0].body.stmts[1].span
    assert text.split("\n", maxsplit=1)[0][span.col - 1 : span.end_col - 1] == "foo"


def test_latin1_is_said_to_be_not_utf8(capsys: pytest.CaptureFixture[str]) -> None:
    Path("latin.cnn").write_bytes(b"# Caf\xe9\n" + NET.encode())
    _, err = check_cli(["check", "latin.cnn"], capsys)
    assert (
        "error[unreadable-file]: cannot read `latin.cnn`: it is not valid UTF-8 "
        "(byte 0xe9 on line 1, byte offset 5 in the file)"
    ) in err
    Path("main.cnn").write_text('use "blocks.cnn"\n' + NET)
    Path("blocks.cnn").write_bytes(b"# blocks\n# na\xefve\nblock b() { relu }\n")
    _, err = check_cli(["check", "main.cnn"], capsys)
    assert "main.cnn:1:1: error[unreadable-file]: cannot read `blocks.cnn`" in err
    assert "(byte 0xef on line 2, byte offset 13 in the file)" in err
    assert "save it as UTF-8" in err


# ------------------------------------------------------ terminal control (item 10)


def test_control_characters_are_escaped_and_carets_line_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Path("esc.cnn").write_text(
        "network N {\n    input x: 3 x 8 x 8\n\trelu \x1b[2J\x1b[H ok\n}\n", encoding="utf-8"
    )
    _, err = check_cli(["check", "esc.cnn"], capsys)
    assert "\x1b" not in err
    source = next(r for r in err.splitlines() if r.startswith("3 | "))
    caret = next(r for r in err.splitlines() if "^" in r)
    assert source == "3 |     relu \\x1b[2J\\x1b[H ok"
    assert caret[caret.index("^") :].startswith("^^^^ ")  # under all four of `\x1b`
    assert source[caret.index("^") :].startswith("\\x1b[2J")


def test_names_messages_and_file_names_are_escaped() -> None:
    name = "evil\x1b[2J\r\nok: 1 file checked\u202e.cnn"
    d = error("missing-file", Span(name, 1, 1, 1, 2), f"cannot find `{name}`", "x\x07", ["\x9b"])
    rendered = render_human([d], {name: "use \x1b\n"})
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", rendered)
    assert rendered.count("\n") == 5  # the head, the excerpt's three lines, the hint
    assert escape(name) == "evil\\x1b[2J\\r\\nok: 1 file checked\\u202e.cnn"
    assert escape("tab\there") == "tab\\there"


def test_load_program_from_reads_through_the_reader(tmp_path: Path) -> None:
    (tmp_path / "n.cnn").write_text(NET)
    assert load_program_from(str(tmp_path / "n.cnn")).sources
