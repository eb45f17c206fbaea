"""The parse cache: a hit skips Lark entirely; misses, corrupt entries and syntax errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cnnspec.diagnostics import DiagnosticError
from cnnspec.syntax import parsecache
from cnnspec.syntax.parser import parse

SPEC = "network N { input image: 3 x 8 x 8\n conv(4, 3) -> relu }\n"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CNNSPEC_CACHE_DIR", str(tmp_path))
    return tmp_path


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "ast").glob("*.pickle")) if (cache / "ast").is_dir() else []


def test_a_hit_gives_the_same_ast(cache: Path) -> None:
    first = parsecache.cached_parse(SPEC, "n.cnn")
    (entry,) = entries(cache)
    assert parsecache.cached_parse(SPEC, "n.cnn") == first == parse(SPEC, "n.cnn")
    assert entries(cache) == [entry]
    other = parsecache.cached_parse(SPEC, "elsewhere/n.cnn")  # spans name the file
    assert other.path == "elsewhere/n.cnn" and len(entries(cache)) == 2
    parsecache.cached_parse(SPEC.replace("4", "5"), "n.cnn")
    assert len(entries(cache)) == 3


def test_corrupt_entries_are_parsed_again(cache: Path) -> None:
    parsecache.cached_parse(SPEC, "n.cnn")
    (entry,) = entries(cache)
    entry.write_bytes(b"not a pickle")
    assert parsecache.cached_parse(SPEC, "n.cnn") == parse(SPEC, "n.cnn")


def test_syntax_errors_are_not_cached(cache: Path) -> None:
    with pytest.raises(DiagnosticError):
        parsecache.cached_parse("network N {", "bad.cnn")
    assert entries(cache) == []


def test_the_cache_can_be_switched_off(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNSPEC_NO_CACHE", "1")
    parsecache.cached_parse(SPEC, "n.cnn")
    assert entries(cache) == []


def test_an_unwritable_cache_only_costs_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("CNNSPEC_CACHE_DIR", str(blocker))
    assert parsecache.cached_parse(SPEC, "n.cnn") == parse(SPEC, "n.cnn")


def test_only_a_syntax_error_imports_lark(cache: Path, tmp_path: Path) -> None:
    """Cold runs parse with cnnspec.syntax.lalr, warm runs not at all; Lark names mistakes."""
    probe = (
        "import sys\nfrom cnnspec.cli.app import main\n"
        "code = main(sys.argv[1:])\n"
        "loaded = ('cnnspec.syntax.parser', 'lark')\n"
        "print(*(m for m in loaded if m in sys.modules), file=sys.stderr)\n"
    )
    bad = tmp_path / "bad.cnn"
    bad.write_text("network N {\n  input x: 8\n  conv(8 3)\n}\n")
    runs = [
        subprocess.run(
            [sys.executable, "-c", probe, *args], capture_output=True, text=True, check=False
        )
        for args in (["summary", "resnet50", "--format", "json"],) * 2 + (["check", str(bad)],)
    ]
    assert runs[0].stderr.strip() == "cnnspec.syntax.parser"  # cold: parsed, without Lark
    assert runs[1].stderr.strip() == ""  # warm: the cache
    assert runs[0].stdout == runs[1].stdout
    assert "unexpected" in runs[2].stdout + runs[2].stderr
    assert runs[2].stderr.strip().splitlines()[-1] == "cnnspec.syntax.parser lark"
