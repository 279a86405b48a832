"""Data augmentation: the 8 dihedral transforms and colour permutations, applied and reverted.

A transform maps a task to an equivalent task: run a program on the augmented task's inputs,
then :meth:`Augmentation.revert_grid` its outputs to score them against the original task.

Dihedral index ``d`` (0..7): flip left-right first when ``d >= 4``, then rotate ``d % 4``
quarter turns counter-clockwise (``np.rot90``). So 0 is the identity, 1..3 are rotations, 4 is a
left-right flip, 6 an up-down flip, 5 and 7 the two transposes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .tasks import Pair, Task

_IDENTITY_COLOURS = tuple(range(10))


@dataclass(frozen=True)
class Augmentation:
    """``colours[c]`` is the colour that ``c`` becomes; ``dihedral`` is the geometric transform."""

    dihedral: int = 0
    colours: tuple[int, ...] = _IDENTITY_COLOURS

    def __post_init__(self) -> None:
        if not isinstance(self.dihedral, int) or isinstance(self.dihedral, bool) or not 0 <= self.dihedral <= 7:
            raise ValueError(f"Augmentation.dihedral must be an int in 0..7, got {self.dihedral!r}")
        colours = tuple(self.colours)
        if sorted(colours) != list(range(10)) or not all(isinstance(c, int) for c in colours):
            raise ValueError(f"Augmentation.colours must be a permutation of 0..9, got {self.colours!r}")
        object.__setattr__(self, "colours", colours)

    @property
    def is_identity(self) -> bool:
        return self.dihedral == 0 and self.colours == _IDENTITY_COLOURS

    def apply_grid(self, grid: np.ndarray) -> np.ndarray:
        grid = np.asarray(grid)
        if self.dihedral >= 4:
            grid = grid[:, ::-1]
        grid = np.rot90(grid, self.dihedral % 4)
        return np.ascontiguousarray(np.asarray(self.colours, dtype=grid.dtype)[grid])

    def revert_grid(self, grid: np.ndarray) -> np.ndarray:
        grid = np.asarray(grid)
        grid = np.rot90(grid, -(self.dihedral % 4))
        if self.dihedral >= 4:
            grid = grid[:, ::-1]
        return np.ascontiguousarray(np.argsort(self.colours).astype(grid.dtype)[grid])

    def revert_outputs(self, outputs: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
        """Revert a program's outputs; ``None`` entries (failed grids) stay ``None``."""
        return [None if g is None else self.revert_grid(g) for g in outputs]

    def apply_task(self, task: Task) -> Task:
        """The same task seen through this transform (every input and known output); the
        augmentation is recorded in ``meta["augmentation"]``."""
        def pair(p: Pair) -> Pair:
            return Pair(self.apply_grid(p.input), None if p.output is None else self.apply_grid(p.output))
        return Task(id=task.id, train=tuple(map(pair, task.train)), test=tuple(map(pair, task.test)),
                    meta={**task.meta, "augmentation": self.to_json()})

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (not a string), for embedding in result and prediction files."""
        return {"dihedral": self.dihedral, "colours": list(self.colours)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Augmentation":
        """Read :meth:`to_json`'s ``{dihedral, colours}`` or arc25's ``{hflip, n_rot90, color_map}``.

        arc25 flips left-right when ``hflip``, then rotates ``n_rot90`` quarter turns with
        ``np.rot90``, then maps each colour ``c`` to ``color_map[c]`` (keys may be strings, as
        JSON writes them; a null map is the identity): the same transform as ``dihedral =
        4 * hflip + n_rot90 % 4`` and ``colours[c] = color_map[c]``.
        """
        if isinstance(data, dict) and set(data) == {"dihedral", "colours"}:
            return cls(dihedral=data["dihedral"], colours=tuple(data["colours"]))
        if isinstance(data, dict) and set(data) == {"hflip", "n_rot90", "color_map"}:
            return cls._from_arc25(data["hflip"], data["n_rot90"], data["color_map"])
        raise ValueError("augmentation must be an object with 'dihedral' and 'colours' (or arc25's 'hflip', "
                         f"'n_rot90' and 'color_map'), got {data!r}")

    @classmethod
    def _from_arc25(cls, hflip: Any, n_rot90: Any, color_map: Any) -> "Augmentation":
        if not isinstance(hflip, bool) and hflip not in (0, 1):
            raise ValueError(f"augmentation hflip must be true or false, got {hflip!r}")
        if not isinstance(n_rot90, int) or isinstance(n_rot90, bool):
            raise ValueError(f"augmentation n_rot90 must be an integer, got {n_rot90!r}")
        if color_map is None:
            return cls(dihedral=4 * int(hflip) + n_rot90 % 4)
        if not isinstance(color_map, dict):
            raise ValueError(f"augmentation color_map must be an object or null, got {color_map!r}")
        try:
            by_colour = {int(k): v for k, v in color_map.items()}
            colours = tuple(by_colour[c] for c in range(10))
        except (KeyError, ValueError):
            raise ValueError(f"augmentation color_map must map each colour 0..9, got {color_map!r}") from None
        return cls(dihedral=4 * int(hflip) + n_rot90 % 4, colours=colours)


def all_dihedral() -> list[Augmentation]:
    """The 8 geometric transforms, colours unchanged."""
    return [Augmentation(dihedral=d) for d in range(8)]


def random_augmentation(rng: np.random.Generator | int | None = None, *, keep_background_prob: float = 1.0,
                        dihedral: bool = True, colours: bool = True) -> Augmentation:
    """A random transform: any of the 8 dihedral ones and a random colour permutation.

    With probability ``keep_background_prob`` colour 0 (black, the usual background) stays 0
    and only 1..9 are shuffled; otherwise all ten colours are. ``dihedral=False`` or
    ``colours=False`` leaves that part as the identity.
    """
    if not 0.0 <= keep_background_prob <= 1.0:
        raise ValueError(f"keep_background_prob must be within 0..1, got {keep_background_prob!r}")
    rng = np.random.default_rng(rng)
    d = int(rng.integers(8)) if dihedral else 0
    perm = _IDENTITY_COLOURS
    if colours:
        if rng.random() < keep_background_prob:
            perm = (0, *(int(c) for c in rng.permutation(np.arange(1, 10))))
        else:
            perm = tuple(int(c) for c in rng.permutation(10))
    return Augmentation(dihedral=d, colours=perm)
