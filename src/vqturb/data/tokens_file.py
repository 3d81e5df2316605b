"""The tokens file (``tokens.npz``): one type that reads, validates, writes and decodes it.

Written by ``vqturb tokenizer save``, read by ``vqturb train-nsp`` and ``vqturb eval-nsp``
(docs/formats.md, "Tokens file"). Fields (SPEC "Tokenization", output format, plus vqturb's own):

==========================  ==================  ============================================
field                       shape, dtype        meaning
==========================  ==================  ============================================
``indices_flat``            [N, T] int32        unified token ids of each field, scale by
                                                scale, row-major inside a scale
``vectors_flat``            [N, T, D] float32   ``codebook[indices_flat]`` (SPEC; not read back)
``codebook``                [V, D] float32      unified codebook: row j is the vector of id j
``scale_offsets``           [K] int64           first unified id of each scale
``scale_vocab_sizes``       [K] int64           ids per scale (1: a deterministic scale)
``scales``                  [K] int64           side length of each scale (T = Σ s²)
``unified_to_scale``        [V] int64           scale of each unified id
``unified_to_original``     [V] int64           index in the VQ-VAE's codebook of each id
``trajectory_id``           [N] int64           trajectory of each row (the dataset's numbering)
``time_index``              [N] int64           time index of each row inside its trajectory
``norm_mean``, ``norm_std`` scalar float64      normalisation the VQ-VAE was trained with
``checkpoint_sha256``       scalar str          SHA-256 of the VQ-VAE checkpoint file
``split``                   [N] int8            0 train, 1 val, 2 test (:mod:`vqturb.data.splits`)
``split_val_fraction``,     scalars             the :class:`SplitRule` ``split`` was made with
``split_test_fraction``,
``split_seed``
``remapped_tokens``         [K] int64           tokens per scale mapped to the nearest code
                                                of ``--vocab_from``'s vocabulary (optional)
==========================  ==================  ============================================

``split`` and its parameters are absent from files written before they were recorded; the split
is then computed with the same rule over the file's trajectory ids (:meth:`TokensFile.split_labels`).

The fields the seed's own tokenizer writes are written too, so that scripts made for it read
vqturb's files (derived from the fields above when written, never read back):
``effective_vocab_size`` (V), ``vocab_size`` (the VQ-VAE's codebook size), ``codebook_dim`` (D),
``config_json`` (the VQ-VAE configuration), ``var_mode``, ``indices_scale_<k>`` ([N, s_k, s_k]
unified ids of scale k), ``original_codebook_scale_<k>`` (the VQ-VAE codebook index of each of scale
k's ids, the remapping new → old) and ``codebook_to_unified_scale_<k>`` ([vocab_size] the unified id
of each codebook index at scale k, −1 where unused: old → new). A file the seed wrote (without
``scales``, ``unified_to_original``, ``trajectory_id``, ``time_index``, ``checkpoint_sha256``) is read
too: scales from the ``indices_scale_<k>`` shapes, ids from ``original_codebook_scale_<k>``, every
row one trajectory in file order, no checkpoint hash.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vqturb.data.pairs import make_pairs, pairs_in
from vqturb.data.splits import SplitRule
from vqturb.errors import InputError

REQUIRED_FIELDS: tuple[str, ...] = (
    "indices_flat",
    "codebook",
    "scales",
    "scale_offsets",
    "scale_vocab_sizes",
    "unified_to_original",
    "trajectory_id",
    "time_index",
    "checkpoint_sha256",
)
OPTIONAL_FIELDS: tuple[str, ...] = (
    "symmetry",
    "symmetry_ops",
    "unified_to_scale",
    "norm_mean",
    "norm_std",
    "split",
    "split_val_fraction",
    "split_test_fraction",
    "split_seed",
    "remapped_tokens",
)


def _from_seed_fields(z: Any) -> dict[str, np.ndarray]:
    """vqturb's fields of a tokens file the seed wrote (module docstring): what it lacks, derived."""
    n_scales = 0
    while f"indices_scale_{n_scales}" in z.files:
        n_scales += 1
    out: dict[str, np.ndarray] = {}
    per = [np.asarray(z[f"indices_scale_{k}"]) for k in range(n_scales)]
    out["scales"] = np.array([p.shape[-1] for p in per], np.int64)
    if all(f"original_codebook_scale_{k}" in z.files for k in range(n_scales)):
        out["unified_to_original"] = np.concatenate(
            [np.asarray(z[f"original_codebook_scale_{k}"]).ravel() for k in range(n_scales)]
        ).astype(np.int64)
    if "indices_flat" in z.files:
        n = int(np.asarray(z["indices_flat"]).shape[0])
        out["trajectory_id"] = np.zeros(n, np.int64)  # one trajectory, in file order
        out["time_index"] = np.arange(n, dtype=np.int64)
    out["checkpoint_sha256"] = np.str_("")
    return out


def scale_positions(scales: Sequence[int] | np.ndarray) -> list[tuple[int, int]]:
    """``(start, end)`` of each scale's tokens inside a row (row-major ``s × s`` blocks)."""
    out, start = [], 0
    for s in scales:
        out.append((start, start + int(s) * int(s)))
        start += int(s) * int(s)
    return out


def ids_to_codes(
    rows: np.ndarray,
    scales: Sequence[int] | np.ndarray,
    scale_offsets: Sequence[int] | np.ndarray,
    scale_vocab_sizes: Sequence[int] | np.ndarray,
    unified_to_original: np.ndarray,
    *,
    where: str | os.PathLike | None = None,
) -> list[np.ndarray]:
    """Unified token rows → original VQ-VAE codebook indices, one int32 ``[N, s, s]`` per scale.

    The one place ids are decoded: the tokenizer's ``decode_indices``, the rollout evaluation's
    decoder and :meth:`TokensFile.codes` all call it.

    Args:
        rows: ``[N, T]`` unified ids (T = Σ s²).
        scales, scale_offsets, scale_vocab_sizes: the vocabulary layout (one entry per scale).
        unified_to_original: ``[V]`` original code of each unified id.
        where: the file named in errors.

    Raises:
        InputError: rows of the wrong shape, or an id outside its scale's range.
    """
    rows = np.asarray(rows)
    t = sum(int(s) * int(s) for s in scales)
    if rows.ndim != 2 or rows.shape[1] != t:
        raise InputError(where, "token rows", f"shape {rows.shape}", f"[N, {t}]")
    u2o = np.asarray(unified_to_original)
    out = []
    for k, ((a, e), s) in enumerate(zip(scale_positions(scales), scales, strict=True)):
        o, v = int(scale_offsets[k]), int(scale_vocab_sizes[k])
        part = rows[:, a:e].astype(np.int64)
        if part.size and (part.min() < o or part.max() >= o + v):
            raise InputError(
                where,
                f"token ids at scale {k}",
                f"ids in [{part.min()}, {part.max()}] outside the scale's range",
                f"[{o}, {o + v})",
            )
        out.append(u2o[part].reshape(-1, int(s), int(s)).astype(np.int32))
    return out


@dataclass(frozen=True, eq=False)
class TokensFile:
    """A validated ``tokens.npz`` (see the module docstring for the fields).

    Build one with :meth:`read`, or directly (the tokenizer, tests); construction validates, and
    every problem is an :class:`InputError` naming ``path`` and the field.
    """

    indices: np.ndarray  # [N, T] int32 unified token ids ("indices_flat")
    codebook: np.ndarray  # [V, D] float32 unified codebook (the NSP model's frozen embedding)
    # the three layout fields accept any sequence or array and are stored as tuples of int
    scales: Sequence[int] | np.ndarray  # side length of each scale
    scale_offsets: Sequence[int] | np.ndarray  # first unified id of each scale
    scale_vocab_sizes: Sequence[int] | np.ndarray  # ids per scale (1 = deterministic scale)
    unified_to_original: np.ndarray  # [V] int64 unified id -> index in the VQ-VAE's codebook
    trajectory_id: np.ndarray  # [N] int64 trajectory of each row
    time_index: np.ndarray  # [N] int64 time index of each row inside its trajectory
    checkpoint_sha256: str = ""  # SHA-256 of the VQ-VAE checkpoint that made the tokens
    norm_mean: float = 0.0  # normalisation the VQ-VAE saw: physical = mean + std * normalised
    norm_std: float = 1.0
    split: np.ndarray | None = None  # [N] int8 0 train / 1 val / 2 test; None: not recorded
    split_rule: SplitRule | None = None  # the rule `split` was computed with
    # [K] tokens mapped to the nearest known code per scale (tokenizer save --vocab_from)
    remapped_tokens: np.ndarray | None = None
    # [N] int8: 0 for a row of the data, j > 0 for a training row's image under element j of the
    # group `symmetry_ops` generates (tokenizer save --augment; training/augment.symmetry_group)
    symmetry: np.ndarray | None = None
    symmetry_ops: str = ""  # e.g. "rot90,mirror"; "" when no row is a symmetry image
    config_json: str = ""  # the VQ-VAE configuration (JSON), for the seed's fields; "" unknown
    path: str = "<memory>"  # where it was read from (named in errors)
    _row_of: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        def fix(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        fix("scales", tuple(int(s) for s in np.ravel(self.scales)))
        fix("scale_offsets", tuple(int(s) for s in np.ravel(self.scale_offsets)))
        fix("scale_vocab_sizes", tuple(int(s) for s in np.ravel(self.scale_vocab_sizes)))
        fix("trajectory_id", np.asarray(self.trajectory_id).astype(np.int64).ravel())
        fix("time_index", np.asarray(self.time_index).astype(np.int64).ravel())
        fix("checkpoint_sha256", str(self.checkpoint_sha256))
        fix("norm_mean", float(self.norm_mean))
        fix("norm_std", float(self.norm_std))
        path = self.path
        scales, offsets, sizes = self.scales, self.scale_offsets, self.scale_vocab_sizes
        if not (len(scales) == len(offsets) == len(sizes)) or not scales:
            raise InputError(
                path, "scales/scale_offsets/scale_vocab_sizes",
                f"lengths {len(scales)}, {len(offsets)}, {len(sizes)}", "one entry per scale in each",
            )  # fmt: skip
        idx = np.asarray(self.indices)
        n_tok = sum(s * s for s in scales)
        if idx.ndim != 2 or idx.shape[1] != n_tok:
            raise InputError(
                path, "indices_flat", f"shape {idx.shape}", f"[N, {n_tok}] for scales {scales}"
            )
        if idx.dtype.kind not in "iu":
            raise InputError(path, "indices_flat", f"dtype {idx.dtype}", "integer token ids")
        fix("indices", idx.astype(np.int32))
        vocab = max(o + v for o, v in zip(offsets, sizes, strict=True))
        cb = np.asarray(self.codebook)
        if cb.ndim != 2 or cb.shape[0] < vocab:
            raise InputError(
                path, "codebook", f"shape {cb.shape}", f"[>= {vocab}, D] (the unified vocabulary)"
            )
        fix("codebook", cb[:vocab].astype(np.float32))
        u2o = np.asarray(self.unified_to_original)
        if u2o.ndim != 1 or u2o.size < vocab or u2o.dtype.kind not in "iu":
            raise InputError(
                path, "unified_to_original", f"shape {u2o.shape} dtype {u2o.dtype}",
                f"[>= {vocab}] integer codebook indices, one per unified id",
            )  # fmt: skip
        if u2o[:vocab].size and u2o[:vocab].min() < 0:
            raise InputError(
                path, "unified_to_original", f"negative entry {u2o.min()}", "codebook indices >= 0"
            )
        fix("unified_to_original", u2o[:vocab].astype(np.int64))
        n = idx.shape[0]
        if not (n == self.trajectory_id.size == self.time_index.size):
            raise InputError(
                path, "trajectory_id/time_index",
                f"{self.trajectory_id.size}/{self.time_index.size} entries",
                f"one per row of indices_flat ({n})",
            )  # fmt: skip
        for j, ((a, e), o, v) in enumerate(
            zip(scale_positions(scales), offsets, sizes, strict=True)
        ):
            block = idx[:, a:e]
            if block.size and (block.min() < o or block.max() >= o + v):
                raise InputError(
                    path, f"indices_flat scale {j}", f"ids in [{block.min()}, {block.max()}]",
                    f"ids in scale {j}'s range [{o}, {o + v})",
                )  # fmt: skip
        row_of = {
            (int(a), int(b)): i
            for i, (a, b) in enumerate(zip(self.trajectory_id, self.time_index, strict=True))
        }
        if len(row_of) != n:
            raise InputError(
                path, "trajectory_id/time_index", f"{n - len(row_of)} repeated (trajectory, time) rows",
                "one row per snapshot",
            )  # fmt: skip
        self._row_of.update(row_of)
        if not (np.isfinite(self.norm_mean) and np.isfinite(self.norm_std) and self.norm_std > 0):
            raise InputError(
                path, "norm_mean/norm_std", f"{self.norm_mean}/{self.norm_std}", "finite, std > 0"
            )
        if (self.split is None) != (self.split_rule is None):
            raise InputError(
                path, "split/split_seed", "a split without its rule (or a rule without a split)",
                "both or neither",
            )  # fmt: skip
        if self.split is not None:
            sp = np.asarray(self.split)
            if sp.shape != (n,) or sp.dtype.kind not in "iu" or (sp.size and sp.max() > 2):
                raise InputError(
                    path, "split", f"shape {sp.shape} dtype {sp.dtype}",
                    f"[{n}] labels 0 (train), 1 (val), 2 (test)",
                )  # fmt: skip
            fix("split", sp.astype(np.int8))
        if self.symmetry is not None:
            sy = np.asarray(self.symmetry)
            if sy.shape != (n,) or sy.dtype.kind not in "iu":
                raise InputError(
                    path, "symmetry", f"shape {sy.shape} dtype {sy.dtype}",
                    f"[{n}] integers, 0 for the data's own rows",
                )  # fmt: skip
            fix("symmetry", sy.astype(np.int8))
        fix("symmetry_ops", str(self.symmetry_ops))

    # ---- reading and writing --------------------------------------------------------------

    @classmethod
    def read(cls, path: str | os.PathLike) -> TokensFile:
        """Read and validate ``path``.

        Raises:
            InputError: the file is missing, is not a readable ``.npz`` (pickles are refused),
                lacks a required field (all missing fields are named), or fails a check.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(
                path, None, "no such tokens file", "an .npz written by vqturb tokenizer save"
            )
        try:
            z = np.load(path, allow_pickle=False)
        except Exception as e:
            raise InputError(path, None, f"unreadable ({e})", "an .npz tokens file") from None
        with z:
            # a file the seed wrote: it has per-scale grids but not vqturb's layout fields
            by_seed = "indices_scale_0" in z.files and "scales" not in z.files
            seed = _from_seed_fields(z) if by_seed else {}
            missing = [f for f in REQUIRED_FIELDS if f not in z.files and f not in seed]
            if missing:
                raise InputError(
                    path,
                    "tokens file fields",
                    f"missing {', '.join(missing)}",
                    f"all of {', '.join(REQUIRED_FIELDS)} (written by vqturb tokenizer save)",
                )
            # vectors_flat is never read: it is codebook[indices_flat], and the largest field
            a = {f: np.asarray(z[f]) for f in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS) if f in z.files}
            a = {**seed, **a}
            config_json = str(z["config_json"]) if "config_json" in z.files else ""
        rule = None
        if all(f in a for f in ("split_val_fraction", "split_test_fraction", "split_seed")):
            rule = SplitRule(
                float(a["split_val_fraction"]),
                float(a["split_test_fraction"]),
                int(a["split_seed"]),
            )
        tokens = cls(
            indices=a["indices_flat"],
            codebook=a["codebook"],
            scales=a["scales"],
            scale_offsets=a["scale_offsets"],
            scale_vocab_sizes=a["scale_vocab_sizes"],
            unified_to_original=a["unified_to_original"],
            trajectory_id=a["trajectory_id"],
            time_index=a["time_index"],
            checkpoint_sha256=str(a["checkpoint_sha256"]),
            norm_mean=float(a["norm_mean"]) if "norm_mean" in a else 0.0,
            norm_std=float(a["norm_std"]) if "norm_std" in a else 1.0,
            split=a.get("split"),
            split_rule=rule,
            remapped_tokens=a.get("remapped_tokens"),
            symmetry=a.get("symmetry"),
            symmetry_ops=str(a["symmetry_ops"]) if "symmetry_ops" in a else "",
            config_json=config_json,
            path=str(path),
        )
        if "unified_to_scale" in a and not np.array_equal(
            np.ravel(a["unified_to_scale"])[: tokens.vocab_size], tokens.unified_to_scale
        ):
            raise InputError(
                path, "unified_to_scale", "disagrees with scale_offsets/scale_vocab_sizes",
                "the scale of each unified id",
            )  # fmt: skip
        return tokens

    def arrays(self) -> dict[str, np.ndarray]:
        """Every field of the file, as written by :meth:`write`."""
        out = {
            "indices_flat": self.indices,
            "vectors_flat": self.codebook[self.indices],
            "codebook": self.codebook,
            "scale_offsets": np.asarray(self.scale_offsets, np.int64),
            "scale_vocab_sizes": np.asarray(self.scale_vocab_sizes, np.int64),
            "unified_to_scale": self.unified_to_scale,
            "unified_to_original": self.unified_to_original,
            "scales": np.asarray(self.scales, np.int64),
            "trajectory_id": self.trajectory_id,
            "time_index": self.time_index,
            "norm_mean": np.float64(self.norm_mean),
            "norm_std": np.float64(self.norm_std),
            "checkpoint_sha256": np.str_(self.checkpoint_sha256),
        }
        if self.split is not None:
            out["split"] = self.split
        if self.remapped_tokens is not None:
            out["remapped_tokens"] = np.asarray(self.remapped_tokens, np.int64)
        if self.symmetry is not None:
            out["symmetry"] = self.symmetry
            out["symmetry_ops"] = np.str_(self.symmetry_ops)
        if self.split_rule is not None:
            out["split_val_fraction"] = np.float64(self.split_rule.val_fraction)
            out["split_test_fraction"] = np.float64(self.split_rule.test_fraction)
            out["split_seed"] = np.int64(self.split_rule.seed)
        out.update(self.seed_arrays())
        return out

    def seed_arrays(self) -> dict[str, Any]:
        """The fields the seed's tokenizer writes (module docstring), derived from this file."""
        import json

        cfg = json.loads(self.config_json) if self.config_json else {}
        n_codes = int(cfg.get("vocab_size", int(self.unified_to_original.max(initial=-1)) + 1))
        out = {
            "effective_vocab_size": np.int64(self.vocab_size),
            "vocab_size": np.int64(n_codes),
            "codebook_dim": np.int64(self.codebook.shape[1]),
            "config_json": np.str_(self.config_json or "{}"),
            "var_mode": np.bool_(cfg.get("var_mode", len(self.scales) > 1)),
        }
        for k, (s, (a, b)) in enumerate(
            zip(self.scales, scale_positions(self.scales), strict=True)
        ):
            out[f"indices_scale_{k}"] = self.indices[:, a:b].reshape(-1, s, s)
            o, v = self.scale_offsets[k], self.scale_vocab_sizes[k]
            original = self.unified_to_original[o : o + v].astype(np.int64)
            out[f"original_codebook_scale_{k}"] = original
            back = np.full(max(n_codes, int(original.max(initial=-1)) + 1), -1, np.int64)
            back[original] = o + np.arange(v)
            out[f"codebook_to_unified_scale_{k}"] = back
        return out

    def write(self, path: str | os.PathLike) -> Path:
        """Write the file atomically; returns ``path``."""
        from vqturb.utils.fileio import atomic_save_npz

        atomic_save_npz(path, **self.arrays())
        return Path(path)

    # ---- the vocabulary -------------------------------------------------------------------

    @property
    def n_rows(self) -> int:
        return int(self.indices.shape[0])

    @property
    def vocab_size(self) -> int:
        """Unified vocabulary size V."""
        return int(self.codebook.shape[0])

    @property
    def unified_to_scale(self) -> np.ndarray:
        """``[V]`` int64 scale of each unified id."""
        out = np.zeros(self.vocab_size, dtype=np.int64)
        for k, (o, v) in enumerate(zip(self.scale_offsets, self.scale_vocab_sizes, strict=True)):
            out[o : o + v] = k
        return out

    @property
    def layout(self) -> dict[str, tuple[int, ...]]:
        """``scales``, ``scale_offsets``, ``scale_vocab_sizes``."""
        return {
            "scales": self.scales,
            "scale_offsets": self.scale_offsets,
            "scale_vocab_sizes": self.scale_vocab_sizes,
        }

    @property
    def fields(self) -> dict[str, Any]:
        """What :meth:`NSPConfig.from_tokens` reads: the layout and the codebook."""
        return {**self.layout, "codebook": self.codebook}

    def codes(self, rows: np.ndarray) -> list[np.ndarray]:
        """Unified rows ``[N, T]`` → original codebook indices, int32 ``[N, s, s]`` per scale."""
        return ids_to_codes(
            rows, self.scales, self.scale_offsets, self.scale_vocab_sizes,
            self.unified_to_original, where=self.path,
        )  # fmt: skip

    def check_checkpoint(
        self, checkpoint: str | os.PathLike, flag: str = "--vqvae_checkpoint"
    ) -> str:
        """The tokens must come from ``checkpoint`` (SHA-256 match); returns its hash.

        Raises:
            InputError: no such file (named as ``flag``), or another checkpoint made the tokens.
        """
        from vqturb.utils.fileio import file_sha256

        p = Path(checkpoint)
        if not p.is_file():
            raise InputError(p, flag, "no such file", "the VQ-VAE checkpoint that made the tokens")
        sha = file_sha256(p)
        if self.checkpoint_sha256 != sha:
            raise InputError(
                self.path, "checkpoint_sha256",
                f"tokens were made by a checkpoint with sha256 {self.checkpoint_sha256[:12]}..., "
                f"{p} has {sha[:12]}...",
                f"the VQ-VAE checkpoint given by {flag}",
            )  # fmt: skip
        return sha

    # ---- rows, pairs and splits -----------------------------------------------------------

    def row_of(self) -> dict[tuple[int, int], int]:
        """(trajectory, time index) -> row."""
        return dict(self._row_of)

    def pairs(self, dt: int = 1) -> np.ndarray:
        """Row pairs ``[P, 2]`` (row of t, row of t + dt) inside each trajectory.

        Raises:
            InputError: ``dt < 1``, or a trajectory that gives no pair (too short for ``dt``).
        """
        if dt < 1:
            raise InputError(None, "--dt", f"{dt}", "a pair spacing of at least 1")
        pairs = make_pairs(self.trajectory_id, self.time_index, dt)
        have = np.unique(self.trajectory_id[pairs[:, 0]])
        for tr in np.setdiff1d(np.unique(self.trajectory_id), have):
            times = self.time_index[self.trajectory_id == tr]
            raise InputError(
                self.path, f"trajectory {tr}",
                f"{times.size} snapshots (time indices {times.min()}..{times.max()})",
                f"trajectories longer than --dt {dt}",
            )  # fmt: skip
        return pairs

    def split_labels(self, fallback: SplitRule | None = None) -> np.ndarray:
        """The split of each row, int8 ``[N]``: the recorded ``split`` when the file has one,
        else ``fallback`` (default :class:`SplitRule`'s defaults) over the trajectory ids."""
        if self.split is not None:
            return self.split
        return (fallback or SplitRule()).labels(self.trajectory_id, self.time_index)

    def effective_split_rule(self, fallback: SplitRule | None = None) -> SplitRule:
        """The rule behind :meth:`split_labels` (recorded, else ``fallback``, else defaults)."""
        if self.split_rule is not None:
            return self.split_rule
        return fallback or SplitRule()

    def split_pairs(
        self, dt: int, fallback: SplitRule | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(train, val, test)`` row pairs of :meth:`pairs`, each pair with both rows in the
        split (:meth:`split_labels`)."""
        pairs = self.pairs(dt)
        labels = self.split_labels(fallback)
        return tuple(pairs_in(pairs, labels, k) for k in range(3))  # type: ignore[return-value]
