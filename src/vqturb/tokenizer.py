"""Tokenizer: a trained VQ-VAE turned into a compact, unified token vocabulary (SPEC "Tokenization").

:class:`VQVAETokenizer` loads a self-describing checkpoint (VQVAE2d or VARVQVAE2d; no model flags),
scans data with the jitted ``model.encode`` in fixed-size batches (streaming: one batch in memory),
collects the codes actually used and builds one vocabulary:

- standard VQ-VAE: the used codes, sorted, remapped to consecutive ids ``0 … n−1``;
- VAR mode: one unified vocabulary with a contiguous range per scale: scale 0 owns
  ``[0, n0)``, scale 1 ``[n0, n0 + n1)``, … (a code used at two scales gets two ids).

A token row holds the unified ids of one field, scale by scale, row-major inside a scale. Codes
never seen by :meth:`fit` raise :class:`~vqturb.errors.InputError` rather than mapping to a wrong
id. :func:`save_tokens` writes the ``tokens.npz`` (:mod:`vqturb.data.tokens_file`), with the
train / val / test split of every row under the rule the VQ-VAE run split its data with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vqturb.checkpoint import load_model
from vqturb.data import Dataset, Normalization, Subset
from vqturb.data.splits import SplitRule
from vqturb.data.tokens_file import TokensFile, ids_to_codes
from vqturb.errors import InputError
from vqturb.models import AbstractVQVAE
from vqturb.utils.fileio import file_sha256

DEFAULT_BATCH = 16


@dataclass(frozen=True, eq=False)
class ScanResult:
    """What one pass of the encoder over a data source produced."""

    # original codebook indices, one int32 array [N, s_k, s_k] per scale
    codes: list[np.ndarray]
    # relative L2 of the model's reconstruction per field [N] (physical units), or None
    rel_l2: np.ndarray | None
    # trajectory id and time index per field [N] (zeros / arange for a bare array)
    trajectory_id: np.ndarray
    time_index: np.ndarray


Source = np.ndarray | Dataset | Subset  # fields [N, H, W] in physical units, or snapshots


def _as_source(source: Source) -> Subset | _ArraySource:
    """A Subset as is; a Dataset → all its snapshots; an array ``[N, H, W]`` wrapped."""
    if isinstance(source, Subset):
        return source
    if isinstance(source, Dataset):
        return source.all()
    if isinstance(source, np.ndarray):
        return _ArraySource(source.astype(np.float32, copy=False))
    raise TypeError(f"tokenizer source: expected ndarray, Dataset or Subset, got {type(source)}")


class _ArraySource:
    def __init__(self, x: np.ndarray):
        if x.ndim != 3:
            raise InputError(None, "fields", f"shape {x.shape}", "[N, H, W]")
        self.x = x
        self.shape = x.shape[1:]
        self.trajectory_ids = np.zeros(len(x), dtype=np.int64)
        self.time_indices = np.arange(len(x), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.x)

    def get_batch(self, idx):
        return self.x[np.asarray(idx)]


class VQVAETokenizer:
    """Wraps a trained VQ-VAE: fields ↔ unified token ids.

    Args:
        checkpoint: a ``.eqx`` written by ``vqturb train-vqvae``.
        var_mode: accepted for SPEC compatibility; when given it must agree with the checkpoint.
        batch_size: fields per jitted encoder/decoder call (the last batch is padded, so there is
            one compilation).
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        *,
        var_mode: bool | None = None,
        batch_size: int = DEFAULT_BATCH,
    ):
        model, header = load_model(checkpoint, kind="vqvae")
        if not isinstance(model, AbstractVQVAE):  # a builder registered for "vqvae" must give one
            raise InputError(
                checkpoint, "checkpoint kind 'vqvae'", type(model).__name__, "an AbstractVQVAE"
            )
        cfg = header["config"]
        ckpt_var = bool(cfg.get("var_mode", False))
        if var_mode is not None and bool(var_mode) != ckpt_var:
            raise InputError(
                checkpoint,
                "--var_mode",
                f"{'given' if var_mode else 'not given'} but the checkpoint is "
                f"{'a VAR (multi-scale)' if ckpt_var else 'a standard'} VQ-VAE",
                "--var_mode exactly when the checkpoint was trained with it",
            )
        meta = header.get("meta", {})
        norm = meta.get("normalization")
        if norm is None:
            raise InputError(checkpoint, "checkpoint meta", "no normalisation", "mean and std")
        self._setup(model, cfg, Normalization.from_dict(norm), file_sha256(checkpoint), batch_size)
        self.checkpoint = Path(checkpoint)
        self.split_rule = SplitRule.from_run_meta(meta)

    @classmethod
    def from_model(
        cls,
        model: AbstractVQVAE,
        config: dict,
        normalization: Normalization,
        *,
        checkpoint_sha256: str = "",
        batch_size: int = DEFAULT_BATCH,
    ) -> VQVAETokenizer:
        """A tokenizer around an in-memory model (tests, notebooks)."""
        self = cls.__new__(cls)
        self._setup(model, config, normalization, checkpoint_sha256, batch_size)
        self.checkpoint = None
        self.split_rule = SplitRule()
        return self

    def _setup(self, model: AbstractVQVAE, cfg: dict, norm, sha: str, batch_size: int) -> None:
        import equinox as eqx

        self.model = model
        self.config = dict(cfg)
        self.var_mode = bool(cfg.get("var_mode", False))
        self.vocab_size = int(cfg["vocab_size"])
        self.codebook_dim = int(cfg["codebook_dim"])
        self.normalization = norm
        self.checkpoint_sha256 = sha
        self.batch_size = int(batch_size)
        self._encode = eqx.filter_jit(lambda m, x: m.encode(x))
        self._decode = eqx.filter_jit(lambda m, idx: m.decode_indices(idx))
        self.used: list[np.ndarray] | None = None  # sorted original codes per scale, after fit
        self.scales: tuple[int, ...] | None = None

    # ---------------------------------------------------------------- scanning

    def _batches(self, src):
        n = len(src)
        for start in range(0, n, self.batch_size):
            idx = np.arange(start, min(n, start + self.batch_size))
            x = np.asarray(src.get_batch(idx), dtype=np.float32)
            yield idx, x

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        res = self.config.get("resolution")
        if res is not None and tuple(shape[-2:]) != (res, res):
            where = getattr(self, "checkpoint", None)
            raise InputError(
                where,
                "field shape",
                f"{shape[-2]}x{shape[-1]} fields",
                f"{res}x{res}, the resolution this checkpoint was trained on",
            )

    def _pad(self, x: np.ndarray) -> np.ndarray:
        b = x.shape[0]
        if b == self.batch_size:
            return x
        return np.concatenate([x, np.repeat(x[-1:], self.batch_size - b, axis=0)])

    def encode_codes(self, fields: np.ndarray) -> list[np.ndarray]:
        """Original codebook indices of physical fields ``[B, H, W]``: one ``[B, s, s]`` per scale."""
        import jax.numpy as jnp

        fields = np.asarray(fields, dtype=np.float32)
        if fields.ndim != 3:
            raise InputError(None, "fields", f"shape {fields.shape}", "[B, H, W]")
        self._check_shape(fields.shape)
        out: list[list[np.ndarray]] = []
        for start in range(0, len(fields), self.batch_size):
            x = fields[start : start + self.batch_size]
            b = x.shape[0]
            xn = self._pad(np.asarray(self.normalization.apply(x), dtype=np.float32))
            codes = self._encode(self.model, jnp.asarray(xn))
            out.append([np.asarray(c)[:b].astype(np.int32) for c in codes])
        if not out:
            return [np.zeros((0, s, s), np.int32) for s in self.scales or ()]
        return [np.concatenate(parts) for parts in zip(*out, strict=True)]

    def scan(
        self, source: Source, *, recon_error: bool = False, progress: bool = False
    ) -> ScanResult:
        """One streaming pass: codes of every field (and the reconstruction error if asked)."""
        import jax.numpy as jnp

        from vqturb.metrics import relative_l2
        from vqturb.utils.progress import Progress

        src = _as_source(source)
        self._check_shape(tuple(src.shape))
        codes: list[list[np.ndarray]] = []
        errs: list[np.ndarray] = []
        with Progress(len(src), "tokenize", "field", disable=not progress) as bar:
            for _, x in self._batches(src):
                b = x.shape[0]
                xn = self._pad(np.asarray(self.normalization.apply(x), dtype=np.float32))
                c = self._encode(self.model, jnp.asarray(xn))
                codes.append([np.asarray(ci)[:b].astype(np.int32) for ci in c])
                if recon_error:
                    rec = np.asarray(self._decode(self.model, c))[:b]
                    rec = self.normalization.invert(rec)
                    errs.append(np.asarray(relative_l2(rec, x)))
                bar.update(b)
        if not codes:
            raise InputError(None, "data", "no fields", "at least one snapshot")
        merged = [np.concatenate(parts) for parts in zip(*codes, strict=True)]
        return ScanResult(
            merged,
            np.concatenate(errs) if recon_error else None,
            np.asarray(src.trajectory_ids, dtype=np.int64),
            np.asarray(src.time_indices, dtype=np.int64),
        )

    # ---------------------------------------------------------------- vocabulary

    def fit(self, source: Source, *, progress: bool = False) -> VQVAETokenizer:
        """Scan ``source`` (Dataset, Subset or ``[N, H, W]`` array) and build the vocabulary."""
        return self.fit_codes(self.scan(source, progress=progress).codes)

    def fit_codes(self, codes: Sequence[np.ndarray]) -> VQVAETokenizer:
        """Build the vocabulary from original codes (one ``[N, s, s]`` array per scale)."""
        self.scales = tuple(int(c.shape[-1]) for c in codes)
        self.used = [np.unique(np.asarray(c)).astype(np.int64) for c in codes]
        return self

    def set_vocabulary(self, scales: Sequence[int], used: Sequence[np.ndarray]) -> VQVAETokenizer:
        """Restore a vocabulary (e.g. from a ``.vqz`` file): sorted used codes per scale."""
        used = [np.asarray(u, dtype=np.int64) for u in used]
        for u in used:
            if u.size and (np.any(np.diff(u) <= 0) or u[0] < 0 or u[-1] >= self.vocab_size):
                raise InputError(None, "vocabulary", "codes not sorted/in range", "valid codes")
        self.scales = tuple(int(s) for s in scales)
        self.used = used
        return self

    def use_vocabulary_of(self, tokens_path: str | os.PathLike) -> VQVAETokenizer:
        """Adopt the unified vocabulary of an earlier tokens file (``tokenizer save --vocab_from``).

        The file must come from the same VQ-VAE checkpoint (its ``checkpoint_sha256``), so that its
        codes index this model's codebooks; then token ids mean the same thing in both files and an
        NSP model trained on one applies to the other.
        """
        from vqturb.data.tokens_file import TokensFile

        z = TokensFile.read(tokens_path)
        if (
            z.checkpoint_sha256
            and self.checkpoint_sha256
            and (z.checkpoint_sha256 != self.checkpoint_sha256)
        ):
            raise InputError(
                tokens_path,
                "checkpoint_sha256",
                f"made by a checkpoint with sha256 {z.checkpoint_sha256[:12]}…, this one is "
                f"{self.checkpoint_sha256[:12]}…",
                "a tokens file made by the same VQ-VAE checkpoint",
            )
        used = np.split(z.unified_to_original, np.cumsum(z.scale_vocab_sizes)[:-1])
        return self.set_vocabulary(z.scales, used)

    def nearest_known_codes(
        self, codes: Sequence[np.ndarray]
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Map every code the vocabulary lacks to the nearest code it has at the same scale.

        Nearest by Euclidean distance between the scale's codebook vectors (the code the
        quantiser would have picked had it been restricted to the vocabulary's codes).

        Args:
            codes: original codebook indices, one ``[N, s, s]`` array per scale.

        Returns:
            ``(codes, remapped)``: the codes with every unknown one replaced, and the number of
            tokens replaced per scale ``[n_scales]`` int64.
        """
        self._require_fit()
        if len(codes) != len(self.used):
            raise InputError(
                None, "codes", f"{len(codes)} scales", f"{len(self.used)} (the vocabulary's)"
            )
        cbs = [np.asarray(c, dtype=np.float32) for c in self.model.codebooks()]
        out, remapped = [], []
        for k, (c, u, cb) in enumerate(zip(codes, self.used, cbs, strict=True)):
            c = np.asarray(c)
            if u.size == 0:
                raise InputError(None, f"vocabulary at scale {k}", "no codes", "at least one")
            known = np.isin(c, u)
            # nearest used code of every codebook entry: a [vocab_size] lookup table
            d2 = ((cb[:, None, :] - cb[None, u, :]) ** 2).sum(-1)
            nearest = u[np.argmin(d2, axis=1)]
            out.append(np.where(known, c, nearest[c]).astype(np.int32))
            remapped.append(int(np.count_nonzero(~known)))
        return out, np.asarray(remapped, np.int64)

    def _require_fit(self) -> None:
        if self.used is None:
            raise InputError(None, "tokenizer", "not fitted", "fit() before encoding")

    @property
    def scale_vocab_sizes(self) -> np.ndarray:
        self._require_fit()
        return np.array([u.size for u in self.used], dtype=np.int64)

    @property
    def scale_offsets(self) -> np.ndarray:
        sizes = self.scale_vocab_sizes
        return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    @property
    def unified_vocab_size(self) -> int:
        return int(self.scale_vocab_sizes.sum())

    @property
    def unified_to_scale(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.used)), self.scale_vocab_sizes).astype(np.int64)

    @property
    def unified_to_original(self) -> np.ndarray:
        self._require_fit()
        return np.concatenate(self.used).astype(np.int64)

    def codebook(self) -> np.ndarray:
        """Unified codebook ``[V, D]``: row ``j`` is the vector of unified id ``j``."""
        cbs = [np.asarray(c, dtype=np.float32) for c in self.model.codebooks()]
        if len(cbs) != len(self.used):
            raise InputError(
                self.checkpoint,
                "vocabulary",
                f"{len(self.used)} scales",
                f"the model's {len(cbs)} scales (refit the tokenizer with this model)",
            )
        return np.concatenate([cb[u] for cb, u in zip(cbs, self.used, strict=True)]).astype(
            np.float32
        )

    # ---------------------------------------------------------------- codes <-> ids

    def codes_to_local(self, codes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Original codes → per-scale local ids ``[0, n_k)``; unseen codes raise InputError."""
        self._require_fit()
        out = []
        for k, (c, u) in enumerate(zip(codes, self.used, strict=True)):
            c = np.asarray(c)
            pos = np.searchsorted(u, c)
            ok = (pos < u.size) & (u[np.minimum(pos, max(u.size - 1, 0))] == c) if u.size else c < 0
            if not np.all(ok):
                bad = int(np.asarray(c)[~ok].ravel()[0])
                raise InputError(
                    None,
                    f"code {bad} at scale {k}",
                    "was not seen when the tokenizer was fitted",
                    "codes from the fitted vocabulary (refit the tokenizer on this data)",
                )
            out.append(pos.astype(np.int32))
        return out

    def local_to_unified(self, local: Sequence[np.ndarray]) -> np.ndarray:
        """Per-scale local ids ``[N, s, s]`` → token rows ``[N, T]`` of unified ids."""
        offs = self.scale_offsets
        n = local[0].shape[0]
        return np.concatenate(
            [np.asarray(x).reshape(n, -1) + offs[k] for k, x in enumerate(local)], axis=1
        ).astype(np.int32)

    def unified_to_codes(self, rows: np.ndarray) -> list[np.ndarray]:
        """Token rows ``[N, T]`` → original codes per scale ``[N, s, s]``
        (:func:`~vqturb.data.tokens_file.ids_to_codes`); ids outside their scale's range raise."""
        self._require_fit()
        return ids_to_codes(
            rows, self.scales, self.scale_offsets, self.scale_vocab_sizes, self.unified_to_original
        )

    def encode_batch(self, fields: np.ndarray) -> np.ndarray:
        """Physical fields ``[B, H, W]`` → unified token rows ``[B, T]`` int32."""
        return self.local_to_unified(self.codes_to_local(self.encode_codes(fields)))

    def encode(self, field: np.ndarray) -> np.ndarray:
        """One physical field ``[H, W]`` → unified token row ``[T]``."""
        return self.encode_batch(np.asarray(field)[None])[0]

    def decode_codes(self, codes: Sequence[np.ndarray]) -> np.ndarray:
        """Original codes per scale ``[N, s, s]`` → physical fields ``[N, H, W]`` float32."""
        import jax.numpy as jnp

        n = codes[0].shape[0]
        out = []
        for start in range(0, n, self.batch_size):
            part = [np.asarray(c[start : start + self.batch_size]) for c in codes]
            b = part[0].shape[0]
            part = tuple(jnp.asarray(self._pad(p)) for p in part)
            rec = np.asarray(self._decode(self.model, part))[:b]
            out.append(np.asarray(self.normalization.invert(rec), dtype=np.float32))
        return np.concatenate(out)

    def decode_indices(self, rows: np.ndarray) -> np.ndarray:
        """Unified token rows ``[B, T]`` (or one row ``[T]``) → physical fields ``[B, H, W]``."""
        rows = np.asarray(rows)
        single = rows.ndim == 1
        fields = self.decode_codes(self.unified_to_codes(np.atleast_2d(rows)))
        return fields[0] if single else fields


# -------------------------------------------------------------------- tokens file and stats


def perplexity(counts: np.ndarray) -> float:
    """exp(entropy) of a usage histogram: the effective number of codes used."""
    p = np.asarray(counts, dtype=np.float64)
    p = p[p > 0] / max(p.sum(), 1.0)
    return float(np.exp(-np.sum(p * np.log(p)))) if p.size else 0.0


def tokenizer_info(tok: VQVAETokenizer, source: Source, *, progress: bool = False) -> dict:
    """Codes used and perplexity per scale, unified vocabulary size, reconstruction rel. L2."""
    scan = tok.scan(source, recon_error=True, progress=progress)
    tok.fit_codes(scan.codes)
    per_scale = []
    for k, c in enumerate(scan.codes):
        counts = np.bincount(c.ravel(), minlength=tok.vocab_size)
        per_scale.append(
            {
                "scale": int(tok.scales[k]),
                "codes_used": int(np.count_nonzero(counts)),
                "perplexity": perplexity(counts),
            }
        )
    return {
        "var_mode": tok.var_mode,
        "n_fields": int(scan.codes[0].shape[0]),
        "codebook_size": tok.vocab_size,
        "scales": per_scale,
        "unified_vocab_size": tok.unified_vocab_size,
        "tokens_per_field": int(sum(s * s for s in tok.scales)),
        "recon_rel_l2_mean": float(np.mean(scan.rel_l2)),
        "recon_rel_l2_max": float(np.max(scan.rel_l2)),
    }


def tokens_file(
    tok: VQVAETokenizer, scan: ScanResult, split_rule: SplitRule | None = None
) -> TokensFile:
    """The tokens file (:class:`~vqturb.data.tokens_file.TokensFile`) of a fitted tokenizer and a
    scan, with the split of every row under ``split_rule`` (default: the checkpoint's own, the
    rule its VQ-VAE run split the data with)."""
    rows = tok.local_to_unified(tok.codes_to_local(scan.codes))
    rule = split_rule or tok.split_rule
    return TokensFile(
        indices=rows,
        codebook=tok.codebook(),
        scales=tok.scales,
        scale_offsets=tok.scale_offsets,
        scale_vocab_sizes=tok.scale_vocab_sizes,
        unified_to_original=tok.unified_to_original,
        trajectory_id=scan.trajectory_id,
        time_index=scan.time_index,
        checkpoint_sha256=tok.checkpoint_sha256,
        norm_mean=tok.normalization.mean,
        norm_std=tok.normalization.std,
        split=rule.labels(scan.trajectory_id, scan.time_index),
        split_rule=rule,
        config_json=json.dumps(tok.config, sort_keys=True, default=str),
    )


def symmetry_scan(
    tok: VQVAETokenizer,
    source: Source,
    scan: ScanResult,
    train: np.ndarray,
    ops: tuple[str, ...],
    *,
    mirror_sign: float = -1.0,
    progress: bool = False,
) -> tuple[ScanResult, np.ndarray]:
    """``scan`` followed by the codes of every image of its ``train`` rows under each
    non-identity element of the group ``ops`` generates (:func:`vqturb.training.augment.
    symmetry_group`). Image j of trajectory t becomes trajectory ``j * n + t`` (``n`` = the
    scan's trajectory count) with t's time indices, so pairs stay inside an image. Returns the
    combined scan and each row's group element (0: the data's own rows)."""
    from vqturb.training.augment import apply_symmetry, symmetry_group
    from vqturb.utils.progress import Progress

    group = symmetry_group(ops)[1:]
    src = _as_source(source)
    rows = np.flatnonzero(train)
    n = int(scan.trajectory_id.max()) + 1
    codes = [[c] for c in scan.codes]  # per scale: a list of [N, s, s] blocks
    traj, time, element = [scan.trajectory_id], [scan.time_index], [np.zeros(len(train), np.int8)]
    with Progress(len(rows) * len(group), "symmetry images", "field", disable=not progress) as bar:
        for start in range(0, len(rows), 4 * tok.batch_size):
            sel = rows[start : start + 4 * tok.batch_size]
            x = np.asarray(src.get_batch(sel), dtype=np.float32)
            for j, g in enumerate(group, start=1):
                c = tok.encode_codes(apply_symmetry(x, g, mirror_sign=mirror_sign))
                for k, ck in enumerate(c):
                    codes[k].append(ck)
                traj.append(j * n + scan.trajectory_id[sel])
                time.append(scan.time_index[sel])
                element.append(np.full(len(sel), j, np.int8))
                bar.update(len(sel))
    merged = ScanResult(
        [np.concatenate(c) for c in codes], None, np.concatenate(traj), np.concatenate(time)
    )
    return merged, np.concatenate(element)


def save_tokens(
    tok: VQVAETokenizer,
    source: Source,
    output: str | os.PathLike,
    *,
    split_rule: SplitRule | None = None,
    vocab_from: str | os.PathLike | None = None,
    augment: tuple[str, ...] = (),
    mirror_sign: float = -1.0,
    progress: bool = False,
) -> TokensFile:
    """Tokenize all of ``source`` and write ``output`` (``tokens.npz``, atomically).

    ``source`` is the whole dataset (its trajectory numbering is what the recorded split refers
    to), a Subset or an ``[N, H, W]`` array (one trajectory). The vocabulary is fitted on
    ``source``, or, with ``vocab_from``, taken from that earlier tokens file (codes it lacks map
    to their nearest code, :meth:`VQVAETokenizer.nearest_known_codes`); the file's
    ``remapped_tokens`` holds the number of tokens so replaced per scale (zeros when fitted).

    ``augment`` (``rot90``, ``mirror``): the training rows' images under every other element of
    the symmetry group are added as new training trajectories (:func:`symmetry_scan`; the
    ``symmetry`` field says which rows they are), more pairs for the NSP model. Only exact
    symmetries of the dynamics belong here: a quarter turn for forcing with k_x = k_y, a mirror
    image for mirror-symmetric forcing (the demo's ``cos 4x + cos 4y`` needs a shift too, so the
    demo uses rot90 only).
    """
    import dataclasses

    from vqturb.data.splits import TRAIN
    from vqturb.training.augment import symmetry_group

    symmetry_group(augment)  # refuses what has no finite group (roll) before encoding anything
    rule = split_rule or tok.split_rule
    scan = tok.scan(source, progress=progress)
    labels = rule.labels(scan.trajectory_id, scan.time_index)
    element = None
    if augment:
        scan, element = symmetry_scan(
            tok, source, scan, labels == TRAIN, augment, mirror_sign=mirror_sign, progress=progress
        )
        labels = np.concatenate([labels, np.full(len(element) - len(labels), TRAIN, np.int8)])
    if vocab_from is None:
        tok.fit_codes(scan.codes)
        remapped = np.zeros(len(scan.codes), np.int64)
    else:
        tok.use_vocabulary_of(vocab_from)
        codes, remapped = tok.nearest_known_codes(scan.codes)
        scan = dataclasses.replace(scan, codes=codes)
    tokens = dataclasses.replace(
        tokens_file(tok, scan, rule),
        split=labels,
        remapped_tokens=remapped,
        symmetry=element,
        symmetry_ops=",".join(augment),
    )
    tokens.write(output)
    return tokens
