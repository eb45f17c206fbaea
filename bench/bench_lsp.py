"""The language server's latency after an edit to specs/resnet152.cnn, in-process.

The server object of `cnnspec lsp` (cnnspec.lsp.server) runs without a client: its
diagnostics notifications are captured and serialized to JSON as they would be sent.
Each round edits the document (the network's `classes` default, a new number each time,
so the text and the graph change), then measures

- **diagnostics**: the debounced check firing, from the edit to the notifications built
  and serialized (the document, and the used resnet_blocks.cnn);
- **hover**: a hover on `bottleneck_stage(256, 36, ...)` answered on the checked text;
- **edit → hover**: a hover sent right after an edit, before the pause has passed (the
  hover runs the waiting check first);
- **inlay hints**: the whole document's hints on the checked text.

Times are wall-clock (and the thread's CPU time: on a shared machine the wall time
grows with the load, the CPU time much less). Files a check did not change are not
parsed again (the workspace's parse cache): the script counts the parses.

    .venv/bin/python bench/bench_lsp.py            # 200 rounds, a Markdown section
    .venv/bin/python bench/bench_lsp.py --rounds 20
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types as t
from lsprotocol.converters import get_converter

from cnnspec.lsp import features
from cnnspec.lsp.server import CnnspecServer, tune_gc

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "resnet152.cnn"


class BenchServer(CnnspecServer):
    """The server without a client: notifications are serialized and kept."""

    def __init__(self) -> None:
        super().__init__()
        self.notifications: list[str] = []
        self.converter = get_converter()

    @property
    def encoding(self) -> str:
        return "utf-16"

    def text_document_publish_diagnostics(self, params: t.PublishDiagnosticsParams) -> None:
        self.notifications.append(json.dumps(self.converter.unstructure(params)))


def _position(text: str, needle: str, offset: int) -> t.Position:
    at = text.index(needle) + offset
    return t.Position(text.count("\n", 0, at), at - (text.rfind("\n", 0, at) + 1))


def _timed(action: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.thread_time()
    value = action()
    return time.perf_counter() - wall, time.thread_time() - cpu, value


def _stats(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"{statistics.median(ms):.1f} | {p95:.1f} | {ms[0]:.1f}"


def measure(rounds: int) -> dict[str, Any]:
    tune_gc()  # as `cnnspec lsp` runs
    server = BenchServer()
    ws = server.analysis
    path = str(SPEC)
    text = SPEC.read_text(encoding="utf-8")

    def edited(n: int) -> str:  # every edit a new text: the document is parsed again
        return text.replace("classes = 1000", f"classes = {1001 + n}")

    hover_at = _position(text, "bottleneck_stage(256", 2)
    everything = t.Range(t.Position(0, 0), t.Position(len(text.splitlines()), 0))
    ws.open(path, text)
    server.check(path)
    times: dict[str, list[tuple[float, float]]] = {
        k: [] for k in ("diagnostics", "hover", "edit → hover", "inlay hints")
    }
    parses_before = ws.parses
    for n in range(rounds + 5):  # the first 5 warm up
        ws.open(path, edited(2 * n))  # the edit (didChange)
        wall, cpu, _ = _timed(lambda: server.check(path))  # the debounced check fires
        assert server.notifications, "no diagnostics were published"
        h_wall, h_cpu, found = _timed(lambda: features.hover(ws, path, hover_at))
        assert found is not None and "layer3" in found.contents.value
        i_wall, i_cpu, hints = _timed(lambda: features.inlay_hints(ws, path, everything))
        assert hints
        ws.open(path, edited(2 * n + 1))  # another edit, and a hover before the pause
        server.pending[path] = _NeverFires()

        def hover_now() -> Any:
            server.flush(path)
            return features.hover(ws, path, hover_at)

        e_wall, e_cpu, found = _timed(hover_now)
        assert found is not None
        if n >= 5:
            times["diagnostics"].append((wall, cpu))
            times["hover"].append((h_wall, h_cpu))
            times["inlay hints"].append((i_wall, i_cpu))
            times["edit → hover"].append((e_wall, e_cpu))
    parses = ws.parses - parses_before
    return {"times": times, "parses": parses, "edits": 2 * (rounds + 5), "nodes": 516}


class _NeverFires:
    """A pending check's timer, as `schedule` leaves it (flush cancels it)."""

    def cancel(self) -> None:
        pass


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        names = [ln.split(":", 1)[1] for ln in lscpu.splitlines() if ln.startswith("Model name")]
        cpu = names[0].strip() if names else cpu
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores, load average {load}, Python {platform.python_version()}"


def report(result: dict[str, Any], rounds: int) -> str:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        f"| {name} | {_stats([w for w, _ in samples])} | {_stats([c for _, c in samples])} |"
        for name, samples in result["times"].items()
    ]
    return "\n".join(
        [
            "## Language server (`cnnspec lsp`)",
            "",
            f"`bench/bench_lsp.py`, {rounds} rounds, {today}; {_machine()}.",
            "In-process: an edit to `specs/resnet152.cnn` (516 nodes, its blocks in the "
            "used `resnet_blocks.cnn`), then the debounced check with its notifications "
            "built and serialized, a hover on `bottleneck_stage(256, 36, ...)`, the "
            "document's inlay hints, and a hover sent before the pause is over. "
            "Milliseconds:",
            "",
            "| | median | p95 | min | CPU median | CPU p95 | CPU min |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Files parsed over the {result['edits']} edits: {result['parses']}: the edited "
            "document each time, never `resnet_blocks.cnn` (the workspace's parse cache). "
            "Targets: 30 ms median, 80 ms p95 for the diagnostics and for a hover after an "
            "edit.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    print(report(measure(args.rounds), args.rounds))


if __name__ == "__main__":
    main()
