"""Golden diagnostics: one bad spec per diagnostic category, with inline expectations.

How the cases are written
=========================

Each case is ``tests/diagnostics/<case>.cnn`` or, when it needs several files, a folder
``tests/diagnostics/<case>/`` whose entry is ``main.cnn``. Expectations are comments in
the spec itself:

* ``conv(16) -> relu  # error[missing-argument]`` expects an ``error`` with code
  ``missing-argument`` whose span starts on *that* line (``warning[...]`` for
  warnings). Several may share one comment: ``# error[a] error[b]``.
* ``# error[code] "text"``: the quoted text (``\\"`` for a quote) must occur in that
  diagnostic's message, label, hints or notes -- not in the echoed source line.
* ``# command line: error[bad-override] "..."`` (a comment line of its own) expects a
  diagnostic with no location in a file (a bad ``--set`` value).
* ``# args: --set classes=10 --input image=3x64x64`` (a comment line of its own) gives
  the command-line options the case is checked with.

The diagnostics of a run must be exactly the expected ones (same multiset of file,
line, severity and code): a missing one fails, and so does an extra one -- which is how
"every independent error is reported" and "an error does not cascade" are tested.

Each case also has a golden rendering ``tests/diagnostics/<case>.expected``: what
``render_human`` prints (no colour, paths relative to the repository root). Rewrite the
goldens with ``CNNSPEC_UPDATE_GOLDEN=1 pytest tests/test_diagnostics.py`` and review
the diff. The CLI run in-process (``cnnspec check``) must print exactly the golden plus
its verdict line, and exit 1 when there is an error, 0 when there are only warnings.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cnnspec.cli.app import build_parser, main, parse_inputs, parse_sets
from cnnspec.diagnostics import (
    CODES,
    WARNING_CODES,
    Diagnostic,
    DiagnosticError,
    render_human,
    summary_line,
)
from cnnspec.model import check_library, check_program, is_library, read_file
from cnnspec.syntax.loader import Unreadable, load_program

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = ROOT / "tests" / "diagnostics"
UPDATE = os.environ.get("CNNSPEC_UPDATE_GOLDEN") == "1"
COMMAND_LINE = "<command line>"

# Codes `cnnspec check` cannot produce: bugs in cnnspec (tested separately below), and
# codes of other commands (tested with those commands). A new code that is in neither
# set needs a case here.
NOT_USER_ERRORS = {"internal", "graph-invariant"}
OTHER_COMMANDS = {"compile-unsupported", "bad-output"}  # tests/cli/test_fileio.py

_EXPECT = re.compile(r'\b(error|warning)\[([a-z-]+)\](?:\s+"((?:[^"\\]|\\.)*)")?')
_STRING = re.compile(r'"([^"\\\n]|\\.)*"')

Key = tuple[str, int, str, str]  # file, line, severity, code


@dataclass(frozen=True)
class Expectation:
    key: Key
    text: str | None


@dataclass
class Case:
    name: str
    entry: str  # relative to the repository root, POSIX separators
    files: list[Path]
    args: list[str] = field(default_factory=list)
    expected: list[Expectation] = field(default_factory=list)

    @property
    def golden(self) -> Path:
        return CASES_DIR / f"{self.name}.expected"


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _comment(line: str) -> str | None:
    """The text after the `#` that starts the line's comment (strings skipped)."""
    blanked = _STRING.sub(lambda m: " " * len(m.group(0)), line)
    at = blanked.find("#")
    return None if at < 0 else line[at + 1 :].strip()


def _expectations(text: str, file: str, line: int) -> list[Expectation]:
    return [
        Expectation(
            (file, line, m.group(1), m.group(2)),
            None if m.group(3) is None else m.group(3).replace('\\"', '"'),
        )
        for m in _EXPECT.finditer(text)
    ]


def load_case(name: str) -> Case:
    single = CASES_DIR / f"{name}.cnn"
    if single.is_file():
        case = Case(name, _rel(single), [single])
    else:
        folder = CASES_DIR / name
        case = Case(name, _rel(folder / "main.cnn"), sorted(folder.glob("*.cnn")))
    for path in case.files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            comment = _comment(line)
            if comment is None:
                continue
            if comment.startswith("args:"):
                case.args += shlex.split(comment.removeprefix("args:"))
            elif comment.startswith("command line:"):
                case.expected += _expectations(comment, COMMAND_LINE, 0)
            else:
                case.expected += _expectations(comment, _rel(path), lineno)
    return case


def case_names() -> list[str]:
    singles = [p.stem for p in CASES_DIR.glob("*.cnn")]
    folders = [p.name for p in CASES_DIR.iterdir() if (p / "main.cnn").is_file()]
    return sorted(singles + folders)


CASES = [load_case(name) for name in case_names()]


def read_repo_file(path: str) -> str | Unreadable:
    """The CLI's reader, with paths relative to the repository root."""
    return read_file(str(ROOT / path))


def diagnose(case: Case) -> tuple[list[Diagnostic], dict[str, str]]:
    """Run the pipeline as ``cnnspec check`` does; every diagnostic and the sources."""
    args = build_parser().parse_args(["check", case.entry, *case.args])
    try:
        overrides, inputs = parse_sets(args.set), parse_inputs(args.input)
        text = read_repo_file(case.entry)
        assert isinstance(text, str)
        program = load_program(case.entry, text, read_repo_file)
        if is_library(program) and not args.set and not args.input:
            return check_library(program), program.sources  # blocks only: names checked
        model = check_program(program, args.network, overrides, inputs)
    except DiagnosticError as exc:
        return list(exc.diagnostics), exc.sources
    return list(model.warnings), model.sources


def key_of(d: Diagnostic) -> Key:
    if d.span.line == 0:
        return (COMMAND_LINE, 0, d.severity.value, d.code)
    return (d.span.file, d.span.line, d.severity.value, d.code)


def described(d: Diagnostic) -> str:
    """What a diagnostic says, without the echoed source line."""
    return "\n".join([d.message, d.label, *d.hints, *(n.message for n in d.notes)])


def show(keys: Counter[Key]) -> str:
    return "\n".join(f"  {f}:{line}: {sev}[{code}]" for (f, line, sev, code) in sorted(keys))


# ------------------------------------------------------------------------ the cases


def test_the_cases_exist() -> None:
    assert len(CASES) >= 40
    for case in CASES:
        assert case.expected, f"{case.name}: a case without expectations tests nothing"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_expected_diagnostics(case: Case) -> None:
    diags, _ = diagnose(case)
    actual = Counter(key_of(d) for d in diags)
    wanted = Counter(e.key for e in case.expected)
    assert actual == wanted, (
        f"missing:\n{show(wanted - actual)}\nunexpected:\n{show(actual - wanted)}"
    )
    for e in case.expected:
        if e.text is None:
            continue
        said = [described(d) for d in diags if key_of(d) == e.key]
        assert any(e.text in s for s in said), f"{e.key}: no {e.text!r} in {said}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_golden_rendering(case: Case) -> None:
    diags, sources = diagnose(case)
    rendered = render_human(diags, sources, color=False)
    if UPDATE:
        case.golden.write_text(rendered, encoding="utf-8")
    assert case.golden.is_file(), f"no golden: run with CNNSPEC_UPDATE_GOLDEN=1 ({case.golden})"
    assert rendered == case.golden.read_text(encoding="utf-8")


def test_no_stale_goldens() -> None:
    names = {c.name for c in CASES}
    stale = [p.name for p in CASES_DIR.glob("*.expected") if p.stem not in names]
    assert not stale


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cli_prints_the_golden(
    case: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    code = main(["check", case.entry, *case.args])
    out, err = capsys.readouterr()
    diags, _ = diagnose(case)
    failed = any(d.is_error for d in diags)
    assert code == (1 if failed else 0)
    verdict = f"{'failed' if failed else 'ok'}: 1 file checked, {summary_line(diags)}\n"
    assert err == case.golden.read_text(encoding="utf-8") + verdict
    assert out == ""
    assert "Traceback" not in err


def test_every_category_has_a_case() -> None:
    covered = {e.key[3] for c in CASES for e in c.expected}
    wanted = set(CODES) - NOT_USER_ERRORS - OTHER_COMMANDS
    assert wanted <= covered, wanted - covered
    for c in CASES:
        for e in c.expected:
            assert e.key[3] in CODES, f"{c.name}: unknown code {e.key[3]}"
            severity = "warning" if e.key[3] in WARNING_CODES else "error"
            assert e.key[2] == severity, f"{c.name}: {e.key[3]} is a {severity}"


SYNTAX_MISTAKES = {
    "syntax_call_without_parens": "arguments go in parentheses",
    "syntax_missing_comma": "separate arguments with `,`",
    "syntax_colon_for_braces": "blocks and networks use braces",
    "syntax_input_equals": "an input's shape follows a colon",
    "syntax_fat_arrow": "chain layers with `->`",
    "syntax_unclosed_brace": "a `{` is never closed",
    "syntax_square_brackets": "pairs are written in parentheses",
    "syntax_reserved_word": "is a reserved word",
    "syntax_reserved_word_statement": "is a reserved word",
}


@pytest.mark.parametrize("name", sorted(SYNTAX_MISTAKES))
def test_each_named_syntax_mistake_is_named(name: str) -> None:
    (case,) = [c for c in CASES if c.name == name]
    diags, _ = diagnose(case)
    assert diags
    assert all(d.code == "syntax" for d in diags)
    assert all(SYNTAX_MISTAKES[name] in described(d) for d in diags)


# --------------------------------------------------------------------- specific promises


def test_a_block_error_is_reported_once_with_its_call_site() -> None:
    (case,) = [c for c in CASES if c.name == "block_used_several_times"]
    diags, _ = diagnose(case)
    assert len(diags) == 1
    (note,) = diags[0].notes
    assert note.span.file == case.entry
    assert (note.span.line, note.span.col) == (9, 5)  # the first `unit(16)`


def test_absurd_sizes_are_refused_quickly() -> None:
    for name in ("too_large_repeat", "too_large_tensor", "too_large_number"):
        (case,) = [c for c in CASES if c.name == name]
        start = time.perf_counter()
        diags, _ = diagnose(case)
        assert time.perf_counter() - start < 2.0, name
        assert any(d.code == "too-large" for d in diags)


def test_json_output_structure(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    (case,) = [c for c in CASES if c.name == "unknown_argument"]
    code = main(["check", "--format", "json", case.entry])
    out, err = capsys.readouterr()
    assert code == 1
    assert err == ""
    data = json.loads(out)
    assert list(data) == ["diagnostics"]
    first = data["diagnostics"][0]
    assert set(first) == {
        "code",
        "severity",
        "message",
        "file",
        "line",
        "col",
        "end_line",
        "end_col",
        "label",
        "hints",
        "notes",
    }
    assert first == {
        "code": "unknown-argument",
        "severity": "error",
        "message": "`conv` has no argument `strid`",
        "file": case.entry,
        "line": 8,
        "col": 17,
        "end_line": 8,
        "end_col": 26,
        "label": "unknown argument",
        "hints": ["did you mean `stride`?"],
        "notes": [],
    }
    diags, _ = diagnose(case)
    assert [(d["code"], d["line"], d["col"]) for d in data["diagnostics"]] == [
        (d.code, d.span.line, d.span.col) for d in diags
    ]


def test_json_notes_carry_the_call_site(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    entry = "tests/diagnostics/block_used_several_times.cnn"
    assert main(["check", "--format", "json", entry]) == 1
    (diag,) = json.loads(capsys.readouterr().out)["diagnostics"]
    assert diag["notes"] == [
        {"message": "in block `unit` called as `unit1`", "location": f"{entry}:9:5"}
    ]


# ------------------------------------------------------------------------ exit codes

CLEAN = """\
network Clean {
    input image: 3 x 32 x 32
    conv(16, 3, padding = 1, bias = false) -> batchnorm -> relu
    global_avgpool -> flatten -> linear(10)
}
"""


def test_exit_0_when_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "clean.cnn").write_text(CLEAN)
    monkeypatch.chdir(tmp_path)
    assert main(["check", "clean.cnn"]) == 0
    assert capsys.readouterr().err == "ok: 1 file checked, 0 errors, 0 warnings\n"
    assert main(["check", "--format", "json", "clean.cnn"]) == 0
    assert json.loads(capsys.readouterr().out) == {"diagnostics": []}


def test_exit_1_when_any_file_has_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    good = "tests/diagnostics/unused_tensor.cnn"  # warnings only
    bad = "tests/diagnostics/bad_argument.cnn"
    assert main(["check", good]) == 0
    assert main(["check", good, bad]) == 1
    err = capsys.readouterr().err
    assert err.endswith("failed: 2 files checked, 7 errors, 1 warning\n")


def test_exit_1_for_a_missing_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["check", "nowhere.cnn"]) == 1
    err = capsys.readouterr().err
    assert "error[missing-file]: cannot read `nowhere.cnn`" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["check"],
        ["frobnicate"],
        ["check", "tests/diagnostics/unused_tensor.cnn", "--set", "classes"],
        ["check", "tests/diagnostics/unused_tensor.cnn", "--input", "image=3xbig"],
        ["check", "x.cnn", "--format", "yaml"],
        ["summary", "x.cnn", "--batch", "0"],
    ],
    ids=["no-file", "no-command", "set-no-value", "input-not-a-shape", "format", "batch"],
)
def test_exit_2_on_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err
    assert "Traceback" not in err


def test_a_bug_is_an_internal_diagnostic_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import cnnspec.cli.app
    import cnnspec.model

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("CNNSPEC_DEBUG", raising=False)
    for module in (cnnspec.model, cnnspec.cli.app):
        monkeypatch.setattr(module, "check_program", broken, raising=False)
    assert main(["summary", "tests/diagnostics/unused_tensor.cnn"]) == 3
    err = capsys.readouterr().err
    assert "error[internal]: cnnspec failed unexpectedly: RuntimeError: boom" in err
    assert "Traceback" not in err


def test_the_real_command_never_prints_a_traceback() -> None:
    """One true subprocess run: `python -m cnnspec` on several bad specs at once."""
    entries = [c.entry for c in CASES]
    proc = subprocess.run(
        [sys.executable, "-m", "cnnspec", "check", *entries],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "error[internal]" not in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith(f"failed: {len(entries)} files")
