"""The learning-rate schedule as data: a factor of ``--lr`` for every optimizer step.

A schedule is a list of contiguous pieces over *global steps* (``epoch x
steps_per_epoch + step``), each a constant or a stretch of the half cosine
``(1 + cos(pi x phase)) / 2``. The checkpoint stores it, so a resumed run follows the
plan it began with. Re-planning on ``--resume`` (another ``--epochs``, another number of
steps per epoch) keeps what has been trained and maps the rest of the plan onto the new
steps, so the learning rate never jumps: a running cosine is stretched (or squeezed) to
end at zero at the new last step. A finished run has no rest; extending it appends a new
cycle of the same shape over the added epochs (a warm restart from ``--lr``).

Imports no torch.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

Shape = Literal["cosine", "constant"]


@dataclass(frozen=True)
class Piece:
    """Steps ``start`` to ``end`` (exclusive): ``level`` (constant), or ``level`` times the
    half cosine at a phase going linearly from ``phase0`` to ``phase1`` (0: 1, 1: 0)."""

    start: int
    end: int
    shape: Shape
    level: float
    phase0: float = 0.0
    phase1: float = 1.0

    def phase(self, step: int) -> float:
        t = min(max((step - self.start) / (self.end - self.start), 0.0), 1.0)
        return self.phase0 + (self.phase1 - self.phase0) * t

    def factor(self, step: int) -> float:
        if self.shape == "constant":
            return self.level
        return self.level * (1.0 + math.cos(math.pi * self.phase(step))) / 2.0

    def after(self, step: int) -> Piece:
        """The part of this piece from ``step`` on."""
        if step <= self.start:
            return self
        return Piece(step, self.end, self.shape, self.level, self.phase(step), self.phase1)


@dataclass(frozen=True)
class Schedule:
    pieces: tuple[Piece, ...]

    @staticmethod
    def plan(kind: str, start: int, end: int) -> Schedule:
        """``cosine`` (1 to 0), ``step`` (x0.1 at 1/3 and 2/3) or ``none`` over the steps."""
        end = max(end, start + 1)
        if kind == "cosine":
            return Schedule((Piece(start, end, "cosine", 1.0),))
        if kind == "step":
            n = end - start
            edges = [start, start + (n + 2) // 3, start + (2 * n + 2) // 3, end]
            levels = (1.0, 0.1, 0.01)
            pieces = (
                Piece(a, b, "constant", level)
                for (a, b), level in zip(itertools.pairwise(edges), levels, strict=True)
            )
            return Schedule(tuple(p for p in pieces if p.end > p.start))
        return Schedule((Piece(start, end, "constant", 1.0),))

    @property
    def end(self) -> int:
        return self.pieces[-1].end

    def factor(self, step: int) -> float:
        """The factor of ``--lr`` for the optimizer step ``step`` (the last one past the end)."""
        for piece in self.pieces:
            if step < piece.end:
                return piece.factor(step)
        last = self.pieces[-1]
        return last.factor(last.end)

    def replan(self, kind: str, at: int, new_at: int, new_end: int) -> Schedule:
        """The schedule from step ``at`` on, moved to start at ``new_at`` and end at
        ``new_end``: the rest of this plan stretched linearly onto the new steps or, when
        nothing is left of it, a new ``kind`` cycle over them."""
        if at >= self.end:
            return Schedule.plan(kind, new_at, new_end)
        scale = (new_end - new_at) / (self.end - at)

        def move(step: int) -> int:
            return new_at + round((step - at) * scale)

        pieces = []
        for piece in self.pieces:
            if piece.end <= at:
                continue
            rest = piece.after(at)
            moved = Piece(
                move(rest.start), move(rest.end), rest.shape, rest.level, rest.phase0, rest.phase1
            )
            if moved.end > moved.start:
                pieces.append(moved)
        if not pieces:  # squeezed to nothing: the last piece's end over the new steps
            last = self.pieces[-1]
            end_factor = last.factor(last.end)
            pieces = [Piece(new_at, max(new_end, new_at + 1), "constant", end_factor)]
        fixed = [*pieces[:-1], _with_end(pieces[-1], new_end)]
        return Schedule(tuple(fixed))

    def to_data(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.pieces]

    @staticmethod
    def from_data(rows: list[dict[str, Any]]) -> Schedule:
        return Schedule(tuple(Piece(**row) for row in rows))


def _with_end(piece: Piece, end: int) -> Piece:
    end = max(end, piece.start + 1)
    return Piece(piece.start, end, piece.shape, piece.level, piece.phase0, piece.phase1)
