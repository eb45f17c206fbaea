"""Starting from pre-trained weights (``--weights``) and freezing parameters (``--freeze``).

The file is a plain state_dict (torchvision's ``resnet18-f37072fd.pth``) or a cnnspec
checkpoint. Its entries are matched by name and shape against the network's; the load is
strict but for the classifier's **head**: the tensors whose shape follows the spec's
``classes`` parameter, which are re-initialised when the file's differ (another number of
classes). Any other missing, unexpected or mismatched entry stops the run after a table of
them, unless ``weights_partial`` asks to load what fits. ``freeze`` globs (``layer1.*``)
over state_dict names stop gradients for the parameters they match; batch-norm layers
whose parameters are all frozen keep their running statistics (they stay in eval mode).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from rich.markup import escape
from rich.table import Table
from torch import Tensor, nn

from cnnspec.train import checkpoint
from cnnspec.train.config import TrainError

if TYPE_CHECKING:
    from cnnspec.model import Model

SHOWN_ROWS = 20  # rows of the difference table; the rest are counted
WRAPPERS = ("state_dict", "model")  # {"state_dict": {...}} as other trainers save them
Kind = Literal["missing", "unexpected", "mismatched"]


@dataclass(frozen=True)
class Difference:
    """One entry that does not load as it is: its shapes in the file and in the network."""

    name: str
    kind: Kind
    in_file: tuple[int, ...] | None
    in_net: tuple[int, ...] | None
    head: bool = False  # the classifier's: re-initialised, never an error

    @property
    def what(self) -> str:
        if self.head:
            return "head: re-initialised"
        return {
            "missing": "not in the file",
            "unexpected": "not in the network",
            "mismatched": "shape differs",
        }[self.kind]


@dataclass
class Fit:
    """How a file's entries meet the network's: those that load, and the differences."""

    loaded: dict[str, Tensor] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)

    @property
    def problems(self) -> list[Difference]:
        return [d for d in self.differences if not d.head]

    @property
    def head(self) -> list[Difference]:
        return [d for d in self.differences if d.head]


class WeightsMismatchError(TrainError):
    """The file's entries do not fit the network; ``fit`` holds the differences."""

    def __init__(self, message: str, fit: Fit) -> None:
        super().__init__(message)
        self.fit = fit


# -------------------------------------------------------------------- reading


def read(path: str | Path) -> dict[str, Tensor]:
    """The state_dict in ``path`` (a plain one, one wrapped as ``{"state_dict": ...}``, or
    a cnnspec checkpoint's weights), on the CPU; a :class:`TrainError` when it is none."""
    file = Path(path)
    if not file.is_file():
        raise TrainError(f"--weights {file}: no such file")
    state = checkpoint.torch_load(file, "cpu", "a state_dict")
    if isinstance(state, dict) and "format" in state and "model" in state:
        return checkpoint.validate(state, checkpoint.Weights, file).model
    if isinstance(state, dict) and not all(isinstance(v, Tensor) for v in state.values()):
        for key in WRAPPERS:  # {"state_dict": {...}, "epoch": 3}: the weights inside
            inner = state.get(key)
            if isinstance(inner, dict) and inner:
                state = inner
                break
    if not isinstance(state, dict) or not state:
        what = "an empty dictionary" if state == {} else f"a {type(state).__name__}"
        raise TrainError(
            f"{file} is not a state_dict: it holds {what}; --weights takes a dictionary of "
            "tensors (torch.save(model.state_dict(), FILE)) or a cnnspec checkpoint"
        )
    odd = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if odd:
        name = odd[0]
        raise TrainError(
            f"{file} is not a state_dict: its entry {name!r} is a "
            f"{type(state[name]).__name__}, not a tensor; --weights takes a dictionary of "
            "tensors (torch.save(model.state_dict(), FILE)) or a cnnspec checkpoint"
        )
    if all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


# ------------------------------------------------------------------- matching


def head_names(spec: Model, net: nn.Module) -> frozenset[str]:
    """The entries whose shape follows the ``classes`` parameter (the classifier's output
    layer, and aux heads'): those of ``net`` that change with one class more. Empty for a
    spec without ``classes``."""
    if "classes" not in spec.graph.params:
        return frozenset()
    from cnnspec.diagnostics import DiagnosticError
    from cnnspec.model import check_program

    classes = int(spec.graph.params["classes"])
    inputs = {name: spec.graph.nodes[name].shape for name in spec.graph.inputs}
    overrides = {**spec.overrides, "classes": classes + 1}
    try:
        other = check_program(spec.program, spec.name, overrides, inputs)  # type: ignore[arg-type]
    except DiagnosticError:  # a spec that takes no other number of classes has no head
        return frozenset()
    with torch.random.fork_rng(devices=[]):  # leave the seeded weights' generator alone
        shapes = {k: v.shape for k, v in other.build().state_dict().items()}
    return frozenset(k for k, v in net.state_dict().items() if shapes.get(k) != v.shape)


def compare(
    net_state: dict[str, Tensor], file_state: dict[str, Tensor], head: frozenset[str]
) -> Fit:
    """Match ``file_state`` against ``net_state`` by name and shape. A missing
    ``num_batches_tracked`` (older files) is not a difference: it starts at 0."""
    fit = Fit()
    for name, tensor in net_state.items():
        got = file_state.get(name)
        shape = tuple(tensor.shape)
        if got is None:
            if not name.endswith("num_batches_tracked"):
                fit.differences.append(Difference(name, "missing", None, shape, name in head))
        elif tuple(got.shape) != shape:
            fit.differences.append(
                Difference(name, "mismatched", tuple(got.shape), shape, name in head)
            )
        else:
            fit.loaded[name] = got
    for name, tensor in file_state.items():
        if name not in net_state:
            fit.differences.append(Difference(name, "unexpected", tuple(tensor.shape), None))
    return fit


def _shape(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "[" + ", ".join(map(str, shape)) + "]"


def difference_table(fit: Fit, path: str | Path, network: str) -> Table:
    """The entries that do not load as they are: name, shape in the file and in the net."""
    table = Table(title=escape(f"--weights {path}: entries that differ"), title_justify="left")
    for name in ("entry", "in the file", f"in {network}", ""):
        table.add_column(name, justify="left" if name in ("entry", "") else "right")
    shown = sorted(fit.differences, key=lambda d: d.head)  # the problems first
    for d in shown[:SHOWN_ROWS]:
        table.add_row(escape(d.name), _shape(d.in_file), _shape(d.in_net), d.what)
    if len(shown) > SHOWN_ROWS:
        table.add_row(f"... and {len(shown) - SHOWN_ROWS} more", "", "", "")
    return table


def _counted(fit: Fit) -> str:
    counts = {k: sum(d.kind == k for d in fit.problems) for k in ("missing", "unexpected")}
    parts = [
        f"{counts['missing']} missing from the file" if counts["missing"] else "",
        f"{counts['unexpected']} not in the network" if counts["unexpected"] else "",
    ]
    mismatched = sum(d.kind == "mismatched" for d in fit.problems)
    parts.append(f"{mismatched} of another shape" if mismatched else "")
    return ", ".join(p for p in parts if p)


@dataclass
class Loaded:
    """What ``--weights`` did, for the run's record and its messages."""

    path: str
    fit: Fit
    notes: list[str] = field(default_factory=list)


def load(spec: Model, net: nn.Module, path: str | Path, partial: bool = False) -> Loaded:
    """Load ``path`` into ``net`` (built from ``spec``): strict but for the head; with
    ``partial``, what fits. A :class:`TrainError` (after the table) when it does not fit."""
    file_state = read(path)
    net_state = net.state_dict()
    fit = compare(net_state, file_state, frozenset())
    if fit.differences:
        fit = compare(net_state, file_state, head_names(spec, net))
    if not fit.loaded:
        first = ", ".join(list(file_state)[:3])
        raise TrainError(
            f"none of the {len(file_state)} entries of {path} fits {spec.name} (the file has "
            f"{first}, ...; the network {', '.join(list(net_state)[:3])}, ...): are these the "
            "weights of another network?"
        )
    result = Loaded(str(path), fit)
    if fit.problems and not partial:
        raise WeightsMismatchError(
            f"{path} does not fit {spec.name}: {_counted(fit)} (the table above lists them). "
            "The load is strict but for the classifier's head; --weights-partial loads only "
            "the entries that fit and leaves the others as initialised",
            fit,
        )
    try:
        net.load_state_dict(fit.loaded, strict=False)
    except (RuntimeError, TypeError, ValueError) as exc:  # a dtype that does not convert
        raise TrainError(f"the weights of {path} do not load: {str(exc)[:200]}") from None
    if fit.head:
        one = next((d for d in fit.head if d.in_file is not None), fit.head[0])
        was = f"{_shape(one.in_file)} in {path}" if one.in_file else f"not in {path}"
        result.notes.append(
            f"note: the head ({', '.join(d.name for d in fit.head)}) is re-initialised for "
            f"{spec.graph.params['classes']} classes ({one.name}: {was}, "
            f"{_shape(one.in_net)} here)"
        )
    if fit.problems:
        result.notes.append(
            f"warning: --weights-partial: {_counted(fit)} (the table above); those of the "
            "network keep their initial values"
        )
    return result


# ------------------------------------------------------------------- freezing


@dataclass
class Frozen:
    """The parameters ``--freeze`` fixed and the batch-norm layers kept in eval mode."""

    names: list[str] = field(default_factory=list)
    trainable: int = 0
    frozen: int = 0
    norms: list[nn.Module] = field(default_factory=list)


def freeze(net: nn.Module, globs: tuple[str, ...], network: str) -> Frozen:
    """Stop gradients for the parameters whose state_dict names match ``globs``."""
    params = dict(net.named_parameters())
    norms = {
        name: m
        for name, m in net.named_modules()
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats
    }
    stats = [f"{name}.running_mean" for name in norms]
    matched: set[str] = set()
    for glob in globs:
        hits = [n for n in params if fnmatch.fnmatchcase(n, glob)]
        if not hits and not any(fnmatch.fnmatchcase(n, glob) for n in stats):
            raise TrainError(_no_match(glob, list(params), network))
        matched.update(hits)
    if globs and len(matched) == len(params):
        raise TrainError(
            f"--freeze {' '.join(globs)} freezes all {len(params)} parameters of {network}: "
            "nothing would train; leave the head out (fine-tune at least the classifier)"
        )
    for name in matched:
        params[name].requires_grad_(False)
    result = Frozen(names=[n for n in params if n in matched])
    result.frozen = sum(p.numel() for n, p in params.items() if n in matched)
    result.trainable = sum(p.numel() for n, p in params.items() if n not in matched)
    for name, module in norms.items():
        own = [f"{name}.{n}" if name else n for n, _ in module.named_parameters()]
        # fixed: every parameter of it is frozen, or a glob names its statistics
        if (own and all(n in matched for n in own)) or _named(f"{name}.running_mean", globs):
            result.norms.append(module)
    return result


def _named(name: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, glob) for glob in globs)


def _no_match(glob: str, names: list[str], network: str) -> str:
    tops = list(dict.fromkeys(n.split(".")[0] for n in names))
    shown = ", ".join(tops[:12]) + (", ..." if len(tops) > 12 else "")
    hint = ""
    if any(n.startswith(f"{glob}.") for n in names):
        hint = f"; for the parameters under {glob}, use '{glob}.*'"
    return (
        f"--freeze {glob!r} matches no parameter of {network}{hint}; its parameters are "
        f"named like {names[0]} (under {shown}): `cnnspec summary` lists the layers"
    )


def train_mode(model: nn.Module, frozen: Frozen) -> None:
    """``model.train()``, but frozen batch-norm layers keep using (and keeping) their
    running statistics."""
    model.train()
    for module in frozen.norms:
        module.eval()
