"""Stage 3: annotate every node with its costs and receptive field; add warnings.

Per node ``meta``: ``params``, ``buffers``, ``macs`` (torchvision's convention: conv
and linear multiply-adds, bias not counted), ``rf`` (receptive field per position
dimension, height x width for an image, in input pixels), ``jump`` (effective stride:
input pixels between neighbouring output positions) and ``elements`` (output elements
per sample). Merges take the maximum receptive field and jump over their branches. See
docs/conventions.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

from cnnspec.diagnostics import Diagnostic, warning
from cnnspec.graph.ir import Graph, Node, per_position
from cnnspec.ops.registry import Args, Family, Op, Shape, ShapeError, output_shape

BYTES_PER_ELEMENT = 4  # fp32


def infer(graph: Graph) -> list[Diagnostic]:
    """Annotate ``graph`` in place; returns the warnings it finds."""
    for node in graph:
        _annotate(graph, node)
    return [*_lossy_downsampling(graph), *_redundant_bias(graph)]


def _annotate(graph: Graph, node: Node) -> None:
    meta = node.meta
    ins = [graph[name] for name in node.inputs]
    in_shape = ins[0].shape if len(ins) == 1 else None
    op, out = node.spec, node.shape
    meta["params"] = meta["buffers"] = meta["macs"] = 0
    meta["elements"] = math.prod(out) if out is not None else 0
    window = None
    if in_shape is not None and out is not None:  # an error leaves a shape unknown
        positions = 1
        if node.channels_last:  # the rules see one position; the MACs happen at each
            positions = math.prod(out[:-1])
            in_shape, out = per_position(in_shape), per_position(out)
        meta["params"] = op.params(node.args, in_shape, out)
        meta["buffers"] = op.buffers(node.args, in_shape, out)
        meta["macs"] = op.macs(node.args, in_shape, out) * positions
        window = op.window(node.args, in_shape) if len(in_shape) >= 2 else None
    if not ins:  # an input: one pixel (sample, voxel) per position dimension
        ones = (1,) * (len(out) - 1 if out is not None and len(out) >= 2 else 2)
        meta["rf"], meta["jump"] = ones, ones
        return
    rf = _widest(i.meta["rf"] for i in ins)
    # a 1 x 1 input broadcast over the output (`mul`'s gate) has no positions to step
    # between: the output's jump is its other inputs'
    stepping = [i for i in ins if not _broadcast(i.shape, out)] or ins
    jump = _widest(i.meta["jump"] for i in stepping)
    meta["rf_in"], meta["jump_in"], meta["window"] = rf, jump, window  # for `explain`
    if window is not None and len(window[0]) == len(rf):
        extents, strides = window
        rf = tuple(r + (k - 1) * j for r, k, j in zip(rf, extents, jump, strict=True))
        jump = tuple(j * s for j, s in zip(jump, strides, strict=True))
    meta["rf"], meta["jump"] = rf, jump


def _widest(sizes: Iterable[tuple[int, ...]]) -> tuple[int, ...]:
    """Per dimension, the largest (of a merge's inputs; features joined with a sequence's
    count one pixel in the dimensions they lack)."""
    return tuple(max(d) for d in itertools.zip_longest(*sizes, fillvalue=1))


def _broadcast(shape: Shape | None, out: Shape | None) -> bool:
    """A C x 1 x 1 input of a merge whose output is larger: stretched over it."""
    ones = (1,) * (len(out) - 1) if out is not None else ()
    return (
        shape is not None
        and out is not None
        and len(shape) == len(out) >= 2
        and shape[1:] == ones
        and out[1:] != ones
    )


@dataclass(frozen=True)
class Totals:
    params: int  # in training: training-only heads included
    inference_params: int  # training-only heads dropped
    trainable_params: int
    buffers: int
    macs: int  # inference: training-only heads excluded
    training_macs: int
    activation_elements: int  # per sample, inference
    input_elements: int

    @property
    def flops(self) -> int:
        return 2 * self.macs


def totals(graph: Graph) -> Totals:
    nodes = list(graph)
    inference = [n for n in nodes if not n.training_only]
    return Totals(
        params=sum(n.meta.get("params", 0) for n in nodes),
        inference_params=sum(n.meta.get("params", 0) for n in inference),
        trainable_params=sum(n.meta.get("params", 0) for n in nodes),
        buffers=sum(n.meta.get("buffers", 0) for n in nodes),
        macs=sum(n.meta.get("macs", 0) for n in inference),
        training_macs=sum(n.meta.get("macs", 0) for n in nodes),
        activation_elements=sum(
            n.meta.get("elements", 0) for n in inference if n.family is not Family.IO
        ),
        input_elements=sum(n.meta.get("elements", 0) for n in nodes if n.family is Family.IO),
    )


# ------------------------------------------------------------------- warnings


def _lossy_downsampling(graph: Graph) -> Iterable[Diagnostic]:
    """A strided window that never reaches the last rows/columns of its input."""
    for node in graph:
        if node.shape is None or node.family not in (Family.CONV, Family.POOL):
            continue
        in_shape = graph[node.inputs[0]].shape
        if in_shape is None or node.args.get("ceil_mode"):
            continue
        dropped = _dropped(node.spec, node.args, in_shape, node.shape)
        if not any(dropped):
            continue
        words = _DIM_WORDS[len(dropped)]
        said = [
            f"{n} of {size} {word}"
            for n, size, word in zip(dropped, in_shape[1:], words, strict=True)
            if n
        ]
        yield warning(
            "lossy-downsampling",
            node.span,
            f"`{node.name}` silently drops the last {' and '.join(said)}",
            "floor rounding",
            [_exact_hint(node.spec, node.args, in_shape)],
        )


_DIM_WORDS = {1: ("samples",), 2: ("rows", "columns"), 3: ("frames", "rows", "columns")}


def _dropped(op: Op, args: Args, in_shape: Shape, out: Shape) -> tuple[int, ...]:
    """Per position dimension, how many of the input's last positions no window reaches
    (all 0 for an op without windows, or with padding "same")."""
    padding = args.get("padding", "same")  # adaptive/global pools: no windows to drop
    window = op.window(args, in_shape) if padding != "same" else None
    if window is None:
        return ()
    pad = (0,) * len(window[0]) if padding == "valid" else padding
    counts = []
    for k, s, p, size, o in zip(*window, pad, in_shape[1:], out[1:], strict=True):
        last = (o - 1) * s - p + k - 1  # the last input index a window reaches
        # unit stride, or windows that skip pixels by design (k < s), drop nothing
        counts.append(0 if s == 1 or k < s else max(size - 1 - last, 0))
    return tuple(counts)


def _exact_hint(op: Op, args: Args, in_shape: Shape) -> str:
    """The fix for dropped positions, in the arguments ``op`` takes (its schema says
    which): each candidate is run through the op's own rule, and offered only where
    every window then fits."""
    fixes = []
    if op.arg_spec("ceil_mode") is not None and _fits(op, {**args, "ceil_mode": True}, in_shape):
        fixes.append("`ceil_mode = true`")
    padding = _exact_padding(op, args, in_shape) if op.arg_spec("padding") is not None else None
    if padding is not None:
        fixes.append(f"`padding = {padding[0] if len(set(padding)) == 1 else padding}`")
    alternative = "resize the input so that the last window ends at its edge"
    return f"use {' or '.join(fixes)}, or {alternative}" if fixes else alternative


def _exact_padding(op: Op, args: Args, in_shape: Shape) -> tuple[int, ...] | None:
    """The least padding, per dimension, with which every position is in a window."""
    padding = args["padding"]
    window = op.window(args, in_shape)
    if window is None or (isinstance(padding, str) and padding != "valid"):
        return None
    pad = (0,) * len(window[0]) if padding == "valid" else tuple(padding)
    found: list[int | None] = [None] * len(pad)
    # padding s - 1 always reaches the last row (floor((in - k + 2p) / s) * s >= in - k + p),
    # so the search ends within a stride (of at most 64: an absurd stride gets no offer)
    for extra in range(min(max(window[1]), 64)):
        trial = tuple(p + extra if f is None else f for p, f in zip(pad, found, strict=True))
        try:
            dropped = _dropped(
                op, {**args, "padding": trial}, in_shape, _out(op, args, trial, in_shape)
            )
        except ShapeError:  # more padding than the op allows (a pool's half kernel)
            return None
        found = [
            t if f is None and n == 0 else f for t, f, n in zip(trial, found, dropped, strict=True)
        ]
        if all(f is not None for f in found):
            best = tuple(f for f in found if f is not None)
            return best if _fits(op, {**args, "padding": best}, in_shape) else None
    return None


def _out(op: Op, args: Args, padding: tuple[int, ...], in_shape: Shape) -> Shape:
    return output_shape(op, {**args, "padding": padding}, in_shape)


def _fits(op: Op, args: Args, in_shape: Shape) -> bool:
    """Whether the op, with ``args``, is valid and reaches every position of its input."""
    try:
        out = output_shape(op, args, in_shape)
    except ShapeError:
        return False
    return not any(_dropped(op, args, in_shape, out))


def _redundant_bias(graph: Graph) -> Iterable[Diagnostic]:
    for node in graph:
        if not node.spec.bias_lint or not node.args.get("bias"):
            continue
        succ = graph.successors(node.name)
        if len(succ) == 1 and graph[succ[0]].spec.cancels_bias:
            norm = graph[succ[0]].op
            yield warning(
                "redundant-bias",
                node.span,
                f"`{node.name}` has a bias right before {norm}, which cancels it",
                "bias = true",
                [f"write `bias = false`: {norm}'s shift does the same"],
            )
