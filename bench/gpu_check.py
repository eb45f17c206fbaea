"""`cnnspec train` on a GPU, checked in one short call (bench/gpu_check.sh runs this).

    bash bench/gpu_check.sh --out DIR                  # on a CUDA machine: about 5 minutes
    bash bench/gpu_check.sh --device cpu --quick       # the CPU smoke test (the test suite's)

It runs from the source tree without installing cnnspec. What the machine lacks of
cnnspec's dependencies (or has too old) is installed from the wheels `make gpu-wheels`
put in build/gpu-wheels, with pip's `--no-index --no-deps --target build/gpu-site`, and
put on PYTHONPATH; nothing else is touched. Then, each step in its own processes with
its own time limit (a step that fails or hangs costs its own row, not the others'):

1. `cnnspec train lenet5` on digits, the default run (40 epochs), twice (the first run
   warms the caches): wall time and validation accuracy against the CPU figures.
2. ResNet-50 from specs/resnet50.cnn on `--data synthetic` (224 x 224, batch 128):
   images/s of the training steps (the trainer's own `train_time_s`, after a warm-up
   epoch; validation and checkpoints excluded) in fp32, bf16 autocast + channels_last,
   and that + `--compile`; torchvision's resnet50 through the same trainer; and the
   input pipeline alone (index, pin, copy, convert, augment), to show it is not the
   bottleneck.
3. `cnnspec summary --train`'s memory estimate (when that command exists) against
   `torch.cuda.max_memory_allocated` of a real run at batch 64.
4. `torchrun --nproc-per-node 2` training lenet5 (NCCL with a GPU per process, gloo when
   they share one), then its checkpoint evaluated by one process (`cnnspec eval`).
5. A run interrupted with Ctrl-C (SIGINT) after its first epoch and resumed, against the
   uninterrupted run of step 1: what is identical, and how far apart the weights are
   (next to how far apart two uninterrupted runs are).

It prints a Markdown report and writes it, with the raw figures as JSON and the logs of
every process, to --out (default build/gpu-check): gpu_check.md, gpu_check.json, logs/.
Exit status 0 when every step ran (a goal missed is reported, not an error), 1 when one
failed. `--device cpu --quick` runs the same steps at toy sizes (ResNet-50 at 32 x 32,
batch 4, a few steps; `--compile` with the `eager` backend, which traces with dynamo
but generates no code), in about a minute on 2 cores: tests/train/test_gpu_check.py.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import io
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from common import bench_env  # noqa: E402

WHEELS = ROOT / "build" / "gpu-wheels"
SITE = ROOT / "build" / "gpu-site"
RESNET = ROOT / "specs" / "resnet50.cnn"

# The CPU figures step 1 is compared with: BENCHMARKS.md, "train" (2026-11-22), seed 0,
# 40 epochs, on a 2-core CPU (the median of seeds 0-2 is the same 99.16 %).
CPU_ACC, CPU_WALL = 0.9916, 26.3
ACC_GOAL = 0.985  # the CPU benchmark's target, which the CPU run meets
WALL_GOAL = 10.0  # s, the goal for the default run on a GPU
SPEEDUP_GOAL = 1.5  # bf16 + channels_last over fp32
TORCHVISION_TOLERANCE = 0.03  # generated / torchvision images/s within 3 %
RESUME_TOLERANCE = 1e-2  # relative L2 distance of the resumed run's weights
DIGITS_STEPS = 23  # ceil(1438 / 64): optimizer steps per epoch of lenet5 on digits


# ------------------------------------------------------------ dependencies


@dataclass(frozen=True)
class Wheel:
    name: str  # canonical: lower case, "-" separated
    version: str
    path: Path
    requires: tuple[str, ...]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_wheels(folder: Path) -> dict[str, Wheel]:
    """The wheels in ``folder`` by distribution name, with their ``Requires-Dist``."""
    wheels: dict[str, Wheel] = {}
    for path in sorted(folder.glob("*.whl")) if folder.is_dir() else []:
        name, version = path.name.split("-")[:2]
        with zipfile.ZipFile(path) as archive:
            meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            text = archive.read(meta).decode("utf-8")
        requires = tuple(
            line.partition(":")[2].strip()
            for line in text.splitlines()
            if line.startswith("Requires-Dist:")
        )
        wheels[canonical(name)] = Wheel(canonical(name), version, path, requires)
    return wheels


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def plan(
    requirements: Iterable[str],
    installed: Callable[[str], str | None],
    wheels: dict[str, Wheel],
) -> tuple[list[Wheel], list[str]]:
    """The wheels to install so that every requirement holds, following the requirements
    of the wheels chosen; and the requirements that neither the machine nor the wheels
    meet. A requirement the machine meets is left to it (nothing is shadowed needlessly).
    """
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip carries its own copy
        from pip._vendor.packaging.requirements import Requirement

    queue = list(requirements)
    chosen: dict[str, Wheel] = {}
    problems: list[str] = []
    while queue:
        req = Requirement(queue.pop(0))
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonical(req.name)
        if name in chosen:
            if not req.specifier.contains(chosen[name].version, prereleases=True):
                problems.append(f"{req} (the wheel is {chosen[name].version})")
            continue
        have = installed(name)
        if have is not None and req.specifier.contains(have, prereleases=True):
            continue
        wheel = wheels.get(name)
        if wheel is None or not req.specifier.contains(wheel.version, prereleases=True):
            here = f"this Python has {have}" if have else "this Python lacks it"
            offer = f"the wheel is {wheel.version}" if wheel else "build/gpu-wheels has no wheel"
            problems.append(f"{req}: {here}, {offer}")
            continue
        chosen[name] = wheel
        queue.extend(wheel.requires)
    return list(chosen.values()), problems


def project_requirements() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return list(tomllib.load(file)["project"]["dependencies"])


def install(wheels: Sequence[Wheel], site: Path) -> None:
    """``pip install --no-index --no-deps --target site``; without pip, unzip the wheels
    (all that installing them into a folder of their own does)."""
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    argv = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
            "--no-index", "--no-deps", "--no-compile", "--no-cache-dir", "--target",
            str(site), *(str(w.path) for w in wheels)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"pip failed ({proc.stderr.strip()[-300:]}); unzipping the wheels", file=sys.stderr)
        for wheel in wheels:
            with zipfile.ZipFile(wheel.path) as archive:
                archive.extractall(site)


def prepare_dependencies() -> dict[str, Any]:
    """Install what is missing; put the source tree and build/gpu-site on the path."""
    record: dict[str, Any] = {"installed": [], "problems": []}
    try:
        chosen, problems = plan(project_requirements(), installed_version, read_wheels(WHEELS))
    except ImportError as exc:  # no `packaging`: say so, and let the imports decide
        chosen, problems = [], [f"cannot check the dependencies ({exc})"]
    record["problems"] = problems
    if chosen:
        install(chosen, SITE)
        record["installed"] = [f"{w.name} {w.version}" for w in chosen]
    paths = [str(ROOT)] + ([str(SITE)] if chosen else [])
    for path in reversed(paths):
        sys.path.insert(0, path)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + ([old] if old else []))
    return record


# ------------------------------------------------------------------ report


@dataclass
class Row:
    key: str
    check: str
    goal: str = ""
    result: str = "not run"
    status: str = "not run"  # ok | missed | FAILED | n/a | skipped | not run
    seconds: float | None = None


@dataclass
class Report:
    out: Path
    meta: dict[str, Any]
    rows: dict[str, Row]
    data: dict[str, Any] = field(default_factory=dict)

    def markdown(self) -> str:
        m = self.meta
        lines = [
            f"## GPU check: {m['date']}",
            "",
            f"- Machine: {m.get('gpu', 'no GPU')}; {m['cpus']} CPU cores; {m['platform']}",
            f"- Python {m['python']}, torch {m.get('torch', '?')} (CUDA {m.get('cuda', '-')}, "
            f"cuDNN {m.get('cudnn', '-')}), torchvision {m.get('torchvision', '?')}; "
            f"C compiler: {m.get('cc') or 'none'}",
            f"- cnnspec from the source tree, commit {m['commit']}; installed from "
            f"build/gpu-wheels: {', '.join(m['deps']['installed']) or 'nothing needed'}",
            f"- `{m['command']}`: {m['mode']}, budget {m['budget']:.0f} s, "
            f"took {m.get('took', 0):.0f} s",
        ]
        lines += [f"- **Dependency problem**: {problem}" for problem in m["deps"]["problems"]]
        lines += [
            "",
            "| # | check | result | goal | status | s |",
            "|---|---|---|---|---|---:|",
        ]
        for row in self.rows.values():
            seconds = "" if row.seconds is None else f"{row.seconds:.1f}"
            cells = [row.key, row.check, row.result, row.goal, row.status, seconds]
            lines.append(
                "| " + " | ".join(" ".join(c.replace("|", "/").split()) for c in cells) + " |"
            )
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        """After every step, so that what ran survives whatever comes next."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu_check.md").write_text(self.markdown(), encoding="utf-8")
        raw = {
            "meta": self.meta,
            "rows": [asdict(r) for r in self.rows.values()],
            "data": self.data,
        }
        text = json.dumps(raw, indent=1, default=str)
        (self.out / "gpu_check.json").write_text(text, encoding="utf-8")

    def failed(self) -> bool:
        return any(r.status in ("FAILED", "not run", "skipped") for r in self.rows.values())


def rows_for(quick: bool) -> dict[str, Row]:
    net = "ResNet-50, 32 x 32, batch 4" if quick else "ResNet-50, 224 x 224, batch 128"
    lenet = "2 epochs" if quick else "default: 40 epochs"
    rows = [
        Row("1", f"`train lenet5` on digits ({lenet}): wall time", f"<= {WALL_GOAL:g} s"),
        Row("1", "`train lenet5` on digits: final validation accuracy", f">= {ACC_GOAL:.1%}"),
        Row("2a", f"{net}, synthetic: fp32 eager, images/s"),
        Row("2b", "bf16 autocast + channels_last", f">= {SPEEDUP_GOAL:g}x fp32"),
        Row("2c", "bf16 + channels_last + `--compile`"),
        Row("2d", "torchvision resnet50, fp32, same trainer", "within 3 %"),
        Row("2e", "torchvision resnet50, bf16 + channels_last", "within 3 %"),
        Row("2f", "input pipeline alone (index, pin, copy, convert, augment)"),
        Row("3", "`summary --train` estimate vs `max_memory_allocated`, batch 64"),
        Row("4", "DDP: `torchrun --nproc-per-node 2`, lenet5"),
        Row("4", "its checkpoint in one process (`cnnspec eval`)", "same accuracy"),
        Row("5", "Ctrl-C after epoch 1, `--resume`, vs the uninterrupted run"),
    ]
    keys = ["1-time", "1-acc", "2a", "2b", "2c", "2d", "2e", "2f", "3", "4-ddp", "4-load", "5"]
    return dict(zip(keys, rows, strict=True))


# --------------------------------------------------------------- processes


@dataclass
class Proc:
    returncode: int | None  # None: killed at the time limit
    wall: float
    log: Path

    def tail(self, lines: int = 3) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return " / ".join(line.strip() for line in text[-lines:])[-400:]

    def describe(self) -> str:
        if self.returncode is None:
            return f"timed out after {self.wall:.0f} s: {self.tail()}"
        return f"exit {self.returncode}: {self.tail()}"


class StepError(Exception):
    """A step failed: the message goes to its row."""


@dataclass
class Context:
    device: str  # cuda | cpu
    quick: bool
    budget: float
    work: Path  # runs and checkpoints (deleted at the end)
    logs: Path
    report: Report
    gpus: int = 0
    start: float = field(default_factory=time.monotonic)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    def remaining(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def limit(self, seconds: float) -> float:
        left = self.remaining()
        if left < 5:
            raise StepError(f"skipped: the {self.budget:.0f} s budget is spent")
        return min(seconds, left)

    def popen(self, argv: Sequence[str], name: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.logs / f"{name}.log"
        with log.open("wb") as file:
            proc = subprocess.Popen(
                argv, stdout=file, stderr=subprocess.STDOUT, cwd=ROOT, env=self.env,
                start_new_session=True,  # its own process group: a time-out kills it all
            )  # fmt: skip
        return proc, log

    def run(self, argv: Sequence[str], name: str, seconds: float) -> Proc:
        timeout = self.limit(seconds)
        start = time.perf_counter()
        proc, log = self.popen(argv, name)
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill(proc)
            code = None
        return Proc(code, time.perf_counter() - start, log)

    def cnnspec(self, args: Sequence[str], name: str, seconds: float) -> Proc:
        return self.run([sys.executable, "-m", "cnnspec", *args], name, seconds)

    def worker(self, kind: str, params: Any, name: str, seconds: float) -> Any:
        """Run ``--worker kind`` in a fresh process; its JSON answer, or StepError."""
        answer = self.work / f"{name}.json"
        (self.work / f"{name}.in.json").write_text(json.dumps(params), encoding="utf-8")
        argv = [sys.executable, str(Path(__file__)), "--worker", kind,
                str(self.work / f"{name}.in.json"), str(answer)]  # fmt: skip
        proc = self.run(argv, name, seconds)
        if proc.returncode != 0 or not answer.is_file():
            raise StepError(proc.describe())
        return json.loads(answer.read_text(encoding="utf-8"))


def kill(proc: subprocess.Popen[bytes]) -> None:
    """End a process and its group: SIGTERM first (torchrun then stops its workers, which
    run in sessions of their own), SIGKILL 10 s later."""
    with contextlib.suppress(ProcessLookupError):  # it has ended already
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # what is left of the group
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def step(ctx: Context, keys: Sequence[str], body: Callable[[], None]) -> None:
    """Run one step; an exception fails its rows that have no result yet, nothing else."""
    start = time.monotonic()
    try:
        body()
    except Exception as exc:
        message = str(exc) if isinstance(exc, StepError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, StepError):
            (ctx.logs / f"error-{keys[0]}.txt").write_text(traceback.format_exc())
        skipped = message.startswith("skipped:")
        for key in keys:
            row = ctx.report.rows[key]
            if row.status == "not run":
                row.result = message[:500]
                row.status = "skipped" if skipped else "FAILED"
    seconds = time.monotonic() - start
    for key in keys:
        if ctx.report.rows[key].seconds is None:
            ctx.report.rows[key].seconds = seconds
    ctx.report.write()


def settle(row: Row, result: str, met: bool | None, quick: bool) -> None:
    """A measured row: ok, or missed when it has a goal it does not meet (not judged in
    the CPU smoke test, where the figures mean nothing)."""
    row.result = result
    row.status = "ok" if met is None or met or quick else "missed"
    if quick and row.goal and not row.goal.endswith("(not judged)"):
        row.goal += " (not judged)"


# ------------------------------------------------------------- the steps


def lenet_args(ctx: Context) -> list[str]:
    args = ["train", "lenet5", "--device", ctx.device, "--no-progress"]
    return args + (["--epochs", "2"] if ctx.quick else [])


def history(out: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return rows


def step_lenet(ctx: Context) -> None:
    """The default run twice (full mode): the first warms the caches; the second is timed.
    Both are kept: step 5 compares against them."""
    rows, data = ctx.report.rows, ctx.report.data
    names = ["lenet5"] if ctx.quick else ["lenet5-first", "lenet5"]
    runs = []
    for name in names:
        out = ctx.work / name
        proc = ctx.cnnspec([*lenet_args(ctx), "--out", str(out)], name, 120)
        if proc.returncode != 0:
            raise StepError(proc.describe())
        runs.append((proc.wall, history(out)))
    wall, hist = runs[-1]
    acc, best = hist[-1]["val_acc"], max(r["val_acc"] for r in hist)
    training = sum(r["time_s"] for r in hist)
    data["lenet5"] = {"runs": [{"wall_s": w, "history": h} for w, h in runs]}
    first = f"; the first run {runs[0][0]:.1f} s" if len(runs) > 1 else ""
    settle(
        rows["1-time"],
        f"{wall:.1f} s (epochs {training:.1f} s, start-up, data and plots "
        f"{wall - training:.1f} s){first}; CPU: {CPU_WALL} s on 2 cores",
        wall <= WALL_GOAL,
        ctx.quick,
    )
    other = f"; the first run {100 * runs[0][1][-1]['val_acc']:.2f} %" if len(runs) > 1 else ""
    settle(
        rows["1-acc"],
        f"{100 * acc:.2f} % (best {100 * best:.2f} %){other}; CPU: {100 * CPU_ACC:.2f} %",
        acc >= ACC_GOAL,
        ctx.quick,
    )


def variants(ctx: Context) -> dict[str, dict[str, Any]]:
    """Step 2's trainer runs, by row."""
    base: dict[str, Any] = {
        "device": ctx.device,
        "batch": 4 if ctx.quick else 128,
        "input": [3, 32, 32] if ctx.quick else None,
        "synthetic": [8, 4] if ctx.quick else None,
        "epochs": 2 if ctx.quick else 4,
        "model": "generated",
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
        "compile_backend": "eager" if ctx.quick else None,
        "pipeline": False,
    }
    fast = {"precision": "bf16", "channels_last": True}
    return {
        "2a": {**base, "pipeline": True},
        "2b": {**base, **fast},
        "2d": {**base, "model": "torchvision"},
        "2e": {**base, **fast, "model": "torchvision"},
        "2c": {**base, **fast, "compile": True, "epochs": 2 if ctx.quick else 3},
    }


def run_variants(ctx: Context, keys: Sequence[str]) -> None:
    """One process per variant on the GPU (a CUDA error poisons its process); in the
    CPU smoke test, one process for them all (each start-up costs seconds there)."""
    table = variants(ctx)
    results: dict[str, Any] = ctx.report.data.setdefault("resnet50", {})
    for key in keys:
        params = {**table[key], "out": str(ctx.work / f"r50-{key}")}
        if ctx.quick:
            continue
        seconds = 240 if params["compile"] else 120
        start = time.monotonic()
        try:
            results[key] = ctx.worker("throughput", [params], f"resnet50-{key}", seconds)[0]
        except StepError as exc:
            results[key] = {"error": str(exc)}
        results[key]["seconds"] = time.monotonic() - start
        shutil.rmtree(params["out"], ignore_errors=True)
    if ctx.quick:
        params = [{**table[k], "out": str(ctx.work / f"r50-{k}")} for k in keys]
        start = time.monotonic()
        answers = ctx.worker("throughput", params, "resnet50", 300)
        for key, answer in zip(keys, answers, strict=True):
            results[key] = {**answer, "seconds": (time.monotonic() - start) / len(keys)}
    fill_resnet_rows(ctx)


def fill_resnet_rows(ctx: Context) -> None:
    rows, results = ctx.report.rows, ctx.report.data["resnet50"]

    def rate(key: str) -> float | None:
        value = results.get(key, {}).get("images_per_s")
        return float(value) if value else None

    for key, result in results.items():
        row = rows[key]
        row.seconds = result.get("seconds")
        if "error" in result:
            skipped = result["error"].startswith("skipped:")
            row.result, row.status = result["error"][:500], "skipped" if skipped else "FAILED"
            if key == "2a":
                rows["2f"].result, rows["2f"].status = "not measured: 2a failed", "FAILED"
            continue
        speed = rate(key) or 0.0
        text = f"{speed:,.0f} img/s"
        if result.get("peak_bytes"):
            text += f", peak {result['peak_bytes'] / 2**30:.1f} GiB"
        met: bool | None = None
        fp32, bf16 = rate("2a"), rate("2b")
        if key == "2b" and fp32:
            text += f"; {speed / fp32:.2f}x fp32"
            met = speed / fp32 >= SPEEDUP_GOAL
        if key == "2c":
            if fp32:
                text += f"; {speed / fp32:.2f}x fp32"
            if bf16:
                text += f", {speed / bf16:.2f}x without --compile"
            dyn = result.get("dynamo", {})
            text += (
                f"; first epoch {result['first_epoch_s']:.0f} s (compiling); "
                f"graph breaks {dyn.get('graph_breaks', '?')}, graphs {dyn.get('graphs', '?')}"
            )
        if key in ("2d", "2e"):
            ours = rate("2a" if key == "2d" else "2b")
            if ours:
                ratio = ours / speed
                text += f"; generated / torchvision {ratio:.3f}"
                met = abs(ratio - 1) <= TORCHVISION_TOLERANCE
        settle(row, text, met, ctx.quick)
        if key == "2a" and result.get("pipeline_images_per_s"):
            pipe = result["pipeline_images_per_s"]
            share = f" ({pipe / bf16:.1f}x the bf16 training rate)" if bf16 else ""
            rows["2f"].result, rows["2f"].status = f"{pipe:,.0f} img/s{share}", "ok"
            rows["2f"].seconds = 0.0


def step_memory(ctx: Context) -> None:
    row = ctx.report.rows["3"]
    helped = ctx.run([sys.executable, "-m", "cnnspec", "summary", "--help"], "summary-help", 60)
    if "--train" not in helped.log.read_text(encoding="utf-8", errors="replace"):
        row.result = "not available: `cnnspec summary` has no `--train` yet (issue 13)"
        row.status = "n/a"
        return
    argv = ["summary", str(RESNET), "--train", "--batch", "64", "--format", "json"]
    proc = ctx.cnnspec(argv, "summary-train", 60)
    if proc.returncode != 0:
        raise StepError(f"`cnnspec {' '.join(argv)}`: {proc.describe()}")
    text = proc.log.read_text(encoding="utf-8", errors="replace")
    estimate = memory_estimate(json.loads(text[text.index("{") :]))
    params = {**variants(ctx)["2a"], "batch": 64, "epochs": 2, "out": str(ctx.work / "mem")}
    params["synthetic"] = [params["batch"] * (1 if ctx.quick else 4), params["batch"]]
    measured = ctx.worker("throughput", [params], "memory", 120)[0]
    shutil.rmtree(params["out"], ignore_errors=True)
    ctx.report.data["memory"] = {"estimate": estimate, "measured": measured}
    if estimate is None:
        raise StepError("`summary --train --format json` gave no memory figure this script reads")
    peak = measured.get("peak_bytes")
    if not peak:
        row.result, row.status = f"estimate {estimate / 2**30:.2f} GiB; nothing measured", "n/a"
        return
    row.result = (
        f"estimate {estimate / 2**30:.2f} GiB, measured {peak / 2**30:.2f} GiB "
        f"(steady epoch; ratio {estimate / peak:.2f})"
    )
    row.status = "ok"


def memory_estimate(answer: Any) -> float | None:
    """The training-memory figure of ``summary --train --format json``, whose layout issue
    13 decides: the number under a key that names training and memory or bytes."""
    found: list[tuple[str, float]] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}".lower())
        elif (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and "train" in path
            and ("memory" in path or "bytes" in path)
        ):
            found.append((path, float(value)))

    walk(answer, "")
    totals = [v for p, v in found if "total" in p or "peak" in p] or [v for _, v in found]
    return max(totals) if totals else None


def step_ddp(ctx: Context) -> None:
    rows = ctx.report.rows
    share = ctx.cuda and ctx.gpus < 2
    device = "cuda:0" if share else ctx.device
    out = ctx.work / "ddp"
    epochs = "1" if ctx.quick else "2"
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            "2", "-m", "cnnspec", "train", "lenet5", "--device", device, "--epochs", epochs,
            "--no-progress", "--out", str(out)]  # fmt: skip
    proc = ctx.run(argv, "ddp", 150)
    if proc.returncode != 0:
        raise StepError(proc.describe())
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))["runtime"]
    hist = history(out)
    from cnnspec.train import checkpoint

    saved = checkpoint.load(out / "last.pt")
    problems = []
    if (saved.world, config["world_size"]) != (2, 2):
        problems.append(f"world {saved.world}")
    if saved.steps_per_epoch != DIGITS_STEPS:
        problems.append(f"{saved.steps_per_epoch} steps per epoch, not {DIGITS_STEPS}")
    if any(k.startswith("module.") for k in saved.model):
        problems.append("`module.` prefixes in the weights")
    why = {
        "nccl": "one GPU per process",
        "gloo": "both processes share the one GPU: NCCL needs a GPU per process"
        if share
        else "CPU",
    }
    backend = config.get("backend")
    ctx.report.data["ddp"] = {"runtime": config, "history": hist, "wall_s": proc.wall}
    rows["4-ddp"].result = (
        f"backend {backend} ({why.get(str(backend), '?')}); 2 processes x batch "
        f"{config['batch_per_process']}, {saved.steps_per_epoch} steps per epoch as 1 process; "
        f"{len(hist)} epoch(s) in {proc.wall:.1f} s; val accuracy {100 * hist[-1]['val_acc']:.2f} %"
        + (f"; PROBLEMS: {', '.join(problems)}" if problems else "")
    )
    rows["4-ddp"].status = "FAILED" if problems else "ok"
    rows["4-ddp"].seconds = proc.wall
    evaluated = ctx.cnnspec(
        ["eval", "lenet5", "--checkpoint", str(out / "last.pt"), "--device", ctx.device,
         "--out", str(ctx.work / "ddp-eval")],
        "ddp-eval", 90,
    )  # fmt: skip
    text = evaluated.log.read_text(encoding="utf-8", errors="replace")
    found = re.search(r"accuracy ([\d.]+)% \((\d+)/(\d+)\)", text)
    if evaluated.returncode != 0 or not found:
        raise StepError(f"`cnnspec eval`: {evaluated.describe()}")
    correct, total = int(found.group(2)), int(found.group(3))
    apart = abs(correct - round(hist[-1]["val_acc"] * total))
    rows["4-load"].result = (
        f"{found.group(1)} % ({correct}/{total}) against rank 0's "
        f"{100 * hist[-1]['val_acc']:.2f} %"
        + (f": {apart} image(s) apart" if apart else ": the same")
    )
    rows["4-load"].status = "ok" if apart <= (1 if ctx.cuda else 0) else "FAILED"
    rows["4-load"].seconds = evaluated.wall


def step_resume(ctx: Context) -> None:
    """Interrupt a run like step 1's with SIGINT once its first epoch is saved, resume it,
    and compare with step 1's run (and step 1's two runs with each other)."""
    row = ctx.report.rows["5"]
    reference = ctx.work / "lenet5"
    if not (reference / "last.pt").is_file():  # step 1 failed: a reference of its own
        proc = ctx.cnnspec([*lenet_args(ctx), "--out", str(reference)], "resume-reference", 120)
        if proc.returncode != 0:
            raise StepError(f"reference run: {proc.describe()}")
    out = ctx.work / "interrupted"
    argv = [sys.executable, "-m", "cnnspec", *lenet_args(ctx), "--out", str(out)]
    timeout = ctx.limit(120)
    proc, log = ctx.popen(argv, "resume-interrupted")
    deadline = time.monotonic() + timeout
    while not (out / "metrics.json").exists() and proc.poll() is None:
        if time.monotonic() > deadline:
            kill(proc)
            raise StepError("the run to interrupt saved no epoch in time")
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        kill(proc)
        raise StepError("the interrupted run did not stop") from None
    if code not in (0, 130):
        raise StepError(f"the interrupted run: exit {code}: {Proc(code, 0, log).tail()}")
    resumed = ctx.cnnspec([*lenet_args(ctx), "--out", str(out), "--resume"], "resume", 120)
    if resumed.returncode != 0:
        raise StepError(f"--resume: {resumed.describe()}")
    record = json.loads((out / "config.json").read_text(encoding="utf-8")).get("resumed", [])
    where = (
        f"stopped in epoch {record[0]['epoch'] + 1} at step {record[0]['step']}"
        if record and code == 130
        else "not interrupted: it finished first"
    )
    same, distance = compare_runs(reference, out)
    rerun = ctx.work / "lenet5-first"
    baseline = compare_runs(reference, rerun)[1] if (rerun / "last.pt").is_file() else None
    ctx.report.data["resume"] = {"where": where, "same": same, "distance": distance,
                                 "rerun": baseline}  # fmt: skip
    differ = [k for k, v in same.items() if not v]
    exact = distance["bit_identical"]
    text = f"{where}; " + (
        f"DIFFERENT: {', '.join(differ)}; "
        if differ
        else "epochs, steps, learning-rate schedule, settings and history epochs identical; "
    )
    if exact:
        text += "weights bit-identical"
    else:
        text += (
            f"weights {distance['relative']:.1e} apart (relative L2; max |dw| "
            f"{distance['max_abs']:.1e}), final val accuracy {100 * distance['acc'][0]:.2f} "
            f"vs {100 * distance['acc'][1]:.2f} %"
        )
    if baseline is not None:
        text += f"; two uninterrupted runs: {baseline['relative']:.1e} apart"
    row.result = text
    # On CPU a resumed run is bit-identical (docs/train.md); on a GPU, as close as the
    # tolerance or as two uninterrupted runs are (cuDNN's kernels are not deterministic).
    limit = max(RESUME_TOLERANCE, 2 * baseline["relative"]) if baseline else RESUME_TOLERANCE
    close = exact if not ctx.cuda else distance["relative"] <= limit
    row.goal = (
        "bit-identical"
        if not ctx.cuda
        else f"<= {RESUME_TOLERANCE:g} apart, or 2x two uninterrupted runs"
    )
    row.status = "ok" if not differ and code == 130 and close else "FAILED"


def compare_runs(a: Path, b: Path) -> tuple[dict[str, bool], dict[str, Any]]:
    """What two runs' ``last.pt`` share exactly, and how far apart their weights are."""
    import torch

    from cnnspec.train import checkpoint

    left, right = checkpoint.load(a / "last.pt"), checkpoint.load(b / "last.pt")
    ignore = {"out", "resume"}
    same = {
        "epoch": (left.epoch, left.step) == (right.epoch, right.step),
        "steps per epoch": left.steps_per_epoch == right.steps_per_epoch,
        "schedule": left.schedule == right.schedule,
        "settings": {k: v for k, v in left.settings.to_dict().items() if k not in ignore}
        == {k: v for k, v in right.settings.to_dict().items() if k not in ignore},
        "history epochs": [r.epoch for r in left.history] == [r.epoch for r in right.history],
        "weight names": left.model.keys() == right.model.keys(),
    }
    exact, diff2, norm2, max_abs = True, 0.0, 0.0, 0.0
    for name in left.model.keys() & right.model.keys():
        x, y = left.model[name], right.model[name]
        exact = exact and torch.equal(x, y)
        if x.is_floating_point():
            delta = (x.double() - y.double()).flatten()
            diff2 += float(delta.square().sum())
            norm2 += float(x.double().square().sum())
            max_abs = max(max_abs, float(delta.abs().max()) if delta.numel() else 0.0)
    distance = {
        "bit_identical": exact,
        "relative": (diff2 / norm2) ** 0.5 if norm2 else 0.0,
        "max_abs": max_abs,
        "acc": [left.history[-1].val_acc, right.history[-1].val_acc],
    }
    return same, distance


# ------------------------------------------------------------- the worker


def worker_throughput(params: dict[str, Any]) -> dict[str, Any]:
    """Train ResNet-50 (the generated module or torchvision's) with the trainer's own
    code; images/s from its ``train_time_s`` per epoch, the first epoch left out."""
    import torch
    from rich.console import Console

    import cnnspec
    from cnnspec.train import data as train_data
    from cnnspec.train import device
    from cnnspec.train.config import TrainConfig
    from cnnspec.train.loop import Trainer, output_classes

    if params["synthetic"]:
        train_data.SYNTHETIC_SIZES = tuple(params["synthetic"])
    spec = cnnspec.load(RESNET)
    if params["input"]:
        spec = cnnspec.load(RESNET, inputs={spec.graph.inputs[0]: tuple(params["input"])})
    if params["model"] == "torchvision":
        import torchvision

        classes = output_classes(spec)
        spec.build = lambda *_a, **_k: torchvision.models.resnet50(num_classes=classes)  # type: ignore[method-assign]
    compile_now = torch.compile
    if params["compile_backend"]:  # the smoke test: trace with dynamo, generate no code
        torch.compile = functools.partial(compile_now, backend=params["compile_backend"])
    config = TrainConfig(
        data="synthetic", epochs=params["epochs"], batch_size=params["batch"],
        device=params["device"], precision=params["precision"],
        channels_last=params["channels_last"], compile=params["compile"], out=params["out"],
        progress=False, workers=0,
    )  # fmt: skip
    config.check()
    runtime = device.start(config.device)
    peaks: list[int] = []
    try:
        trainer = Trainer(spec, config, runtime, Console(file=io.StringIO()))
        dev = trainer.dev
        cuda = dev.type == "cuda"
        one_epoch = trainer._epoch

        def measured(progress: Any) -> None:  # the peak of every epoch, validation included
            if cuda:
                torch.cuda.reset_peak_memory_stats(dev)
            one_epoch(progress)
            peaks.append(torch.cuda.max_memory_allocated(dev) if cuda else 0)

        trainer._epoch = measured  # type: ignore[method-assign]
        result = trainer.run()
        pipeline = input_pipeline(trainer) if params["pipeline"] else None
    finally:
        device.stop(runtime)
        torch.compile = compile_now
    rows = result.history
    later = rows[1:] or rows
    answer: dict[str, Any] = {
        "params": params,
        "images_per_s": statistics.median(r["images_per_s"] for r in later),
        "train_time_s": [r["train_time_s"] for r in rows],
        "first_epoch_s": rows[0]["train_time_s"],
        "peak_bytes": max(peaks[1:] or peaks) if any(peaks) else None,
        "peaks": peaks,
        "pipeline_images_per_s": pipeline,
        "steps_per_epoch": trainer.steps_per_epoch,
    }
    if params["compile"]:
        answer["dynamo"] = dynamo_counters()
    return answer


def input_pipeline(trainer: Any) -> float:
    """Images/s of the trainer's per-step input work alone, one epoch of it."""
    import torch

    from cnnspec.train import device

    dev = trainer.dev
    gen = torch.Generator(device=dev).manual_seed(0)
    seen, start = 0, time.perf_counter()
    for images, labels in trainer.train_batches.batches(0):
        x = trainer.pre(images.to(dev, non_blocking=True), gen)
        labels.to(dev, non_blocking=True)
        seen += x.shape[0]
    device.synchronize(dev)
    return seen / (time.perf_counter() - start)


def dynamo_counters() -> dict[str, Any]:
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return {}
    breaks = counters.get("graph_break", {})
    return {
        "graph_breaks": sum(breaks.values()),
        "break_reasons": sorted(str(r)[:200] for r in breaks)[:10],
        "graphs": counters.get("stats", {}).get("unique_graphs"),
    }


def worker(kind: str, source: Path, answer: Path) -> int:
    params = json.loads(source.read_text(encoding="utf-8"))
    if kind != "throughput":
        raise SystemExit(f"unknown worker {kind}")
    answers = []
    for one in params:
        try:
            answers.append(worker_throughput(one))
        except Exception as exc:
            traceback.print_exc()
            answers.append({"error": f"{type(exc).__name__}: {str(exc)[:400]}"})
        shutil.rmtree(one["out"], ignore_errors=True)
    answer.write_text(json.dumps(answers), encoding="utf-8")
    return 0


# ------------------------------------------------------------------- main


def probe(ctx: Context, meta: dict[str, Any]) -> None:
    """What the machine has (in this process: nothing here runs on the GPU)."""
    import torch

    meta["torch"], meta["cuda"] = torch.__version__, torch.version.cuda
    meta["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    meta["torchvision"] = installed_version("torchvision")
    meta["cc"] = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not ctx.cuda:
        return
    if not torch.cuda.is_available():
        why = "this torch has no CUDA" if torch.version.cuda is None else "no GPU is visible"
        raise StepError(f"CUDA is not available: {why}")
    ctx.gpus = torch.cuda.device_count()
    meta["gpu"] = f"{ctx.gpus} GPU(s)"
    try:  # descriptive only: nothing here may stop the check
        props = torch.cuda.get_device_properties(0)
        meta["gpu"] = (
            f"{ctx.gpus} x {props.name} ({props.total_memory / 2**30:.0f} GiB, compute "
            f"{props.major}.{props.minor})"
        )
        meta["bf16"] = torch.cuda.is_bf16_supported()
        smi = shutil.which("nvidia-smi")
        if smi:
            query = [smi, "--query-gpu=driver_version", "--format=csv,noheader"]
            done = subprocess.run(query, capture_output=True, text=True, check=False, timeout=30)
            meta["gpu"] += f", driver {(done.stdout.strip().splitlines() or ['?'])[0]}"
    except Exception as exc:
        meta["gpu"] += f" (no details: {type(exc).__name__}: {exc})"


def commit() -> str:
    def git(*args: str) -> str:
        try:
            argv = ["git", "-C", str(ROOT), *args]
            return subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        except OSError:
            return ""

    head = git("rev-parse", "--short", "HEAD").strip()
    dirty = git("status", "--porcelain", "--", "cnnspec", "bench").strip()
    return (head or "unknown") + (" + uncommitted changes" if head and dirty else "")


def scratch(quick: bool) -> Path:
    """Runs and checkpoints (ResNet-50's are 300 MB each): in memory when there is room."""
    shm = Path("/dev/shm")
    room = 2 if quick else 8
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > room * 2**30:
        return Path(tempfile.mkdtemp(prefix="gpu-check-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="gpu-check-"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--quick", action="store_true", help="toy sizes (the CPU smoke test)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gpu-check")
    parser.add_argument("--budget", type=float, default=None, help="seconds (330; quick 240)")
    parser.add_argument("--keep", action="store_true", help="keep the runs' folders")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:  # the parent's PYTHONPATH has the source tree and build/gpu-site
        sys.path.insert(0, str(ROOT))
        return worker(args.worker[0], Path(args.worker[1]), Path(args.worker[2]))

    deps = prepare_dependencies()
    out: Path = args.out.resolve()
    budget = args.budget or (240.0 if args.quick else 330.0)
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "platform": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "commit": commit(),
        "deps": deps,
        "command": "bash bench/gpu_check.sh " + " ".join(sys.argv[1:] if argv is None else argv),
        "mode": f"{'quick' if args.quick else 'full'}, --device {args.device}",
        "budget": budget,
    }
    report = Report(out, meta, rows_for(args.quick))
    logs = out / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    work = scratch(args.quick)
    env = {**bench_env(), "PYTHONUNBUFFERED": "1"}
    if args.device == "cpu":
        env["OMP_NUM_THREADS"] = "1"  # the same CPU kernels in every run: step 5 is exact
    ctx = Context(args.device, args.quick, budget, work, logs, report, env=env)
    try:
        try:
            probe(ctx, meta)
        except Exception as exc:  # no torch, no GPU: every step says why
            for row in report.rows.values():
                row.result, row.status = f"not run: {exc}", "FAILED"
        else:
            # On the GPU, the compiled run comes last: it is the slowest, and the likeliest
            # to run out of time. The smoke test runs all of step 2 in one process.
            eager = ["2a", "2b", "2d", "2e"] + (["2c"] if ctx.quick else [])
            step(ctx, ["1-time", "1-acc"], lambda: step_lenet(ctx))
            step(ctx, [*eager, "2f"], lambda: run_variants(ctx, eager))
            step(ctx, ["3"], lambda: step_memory(ctx))
            step(ctx, ["4-ddp", "4-load"], lambda: step_ddp(ctx))
            step(ctx, ["5"], lambda: step_resume(ctx))
            if not ctx.quick:
                step(ctx, ["2c"], lambda: run_variants(ctx, ["2c"]))
    finally:
        meta["took"] = time.monotonic() - ctx.start
        report.write()
        if args.keep:
            print(f"runs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report.markdown())
    print(f"written to {out / 'gpu_check.md'} and gpu_check.json; logs in {logs}")
    return 1 if report.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
