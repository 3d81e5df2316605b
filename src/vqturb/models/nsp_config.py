"""Configuration of the next-scale predictor: trunk presets and :class:`NSPConfig` (scales, vocabulary
ranges and transformer sizes, JSON-safe)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# Hyper-parameter presets for the transformer trunk; the scales and vocabularies always come from
# the tokens file. "spec" is the SPEC's default (about 6M parameters with its vocabulary).
PRESETS: dict[str, dict[str, int]] = {
    "spec": {"n_layer": 6, "n_head": 8, "n_embd": 256},
    "cpu": {"n_layer": 2, "n_head": 4, "n_embd": 64},
}


def preset(name: str) -> dict[str, int]:
    """Trunk hyper-parameters of a preset ("spec" or "cpu"), for ``NSPConfig.from_tokens``."""
    if name not in PRESETS:
        raise ValueError(f"unknown NSP preset {name!r}; known: {', '.join(PRESETS)}")
    return dict(PRESETS[name])


@dataclass(frozen=True)
class NSPConfig:
    """Configuration of :class:`NextScalePredictor` (JSON-safe through ``to_dict``/``from_dict``)."""

    # Side length of every scale, coarse to fine (tokens per frame T = sum(s**2)).
    scales: tuple[int, ...]
    # Start of each scale's range in the unified vocabulary (tokens file ``scale_offsets``).
    scale_offsets: tuple[int, ...]
    # Size of each scale's vocabulary range; 1 means the scale is deterministic (no head).
    scale_vocab_sizes: tuple[int, ...]
    # Dimension D of the frozen unified codebook vectors that embed the tokens.
    codebook_dim: int
    # Number of transformer blocks (SPEC default 6).
    n_layer: int = 6
    # Number of attention heads; must divide n_embd (SPEC default 8).
    n_head: int = 8
    # Width of the residual stream (SPEC default 256).
    n_embd: int = 256
    # Hidden width of the MLP as a multiple of n_embd (GPT-2 uses 4).
    mlp_ratio: int = 4
    # Dropout probability on the attention and MLP outputs while training (0 disables it).
    dropout: float = 0.0
    # Add t0's token at the same frame position (through its own learned projection) to every t1
    # position, content and query alike: "copy t0 where nothing moved" then needs no attention.
    # t0 is fully visible, so this keeps the block causality. False is the seed's design (t0 is
    # read through attention only). On the demo data it lifts the validation accuracy at scales
    # 2/4/8 from 0.22/0.01/0.01 to 0.77/0.44/0.42 after 400 steps (README, "Forecasting").
    t0_same_position: bool = True
    # Add a learned per-scale "copy t0" prior to every head's logits (a pointer to t0's token at
    # the same position, as in pointer-generator networks, See et al. 2017, arXiv:1704.04368):
    # ``copy_logit_k`` on t0's own token and ``-near_gain_k * d^2 / mean d^2`` on every code by
    # its squared codebook distance to that token (the next code is likely a neighbour). The
    # trainer initialises ``copy_logit_k`` at the log-odds of the copy rate of its training pairs,
    # so the untrained model already forecasts persistence and training learns the changes.
    # Default by measurement (demo tokens, cpu preset, 2000 steps, scored on a new generator
    # seed): teacher-forced accuracy at 2²/4²/8² 0.726/0.542/0.404 against 0.622/0.461/0.388
    # without it (copy rate 0.750/0.561/0.406), loss 1.28/2.32/3.01 against 1.54/2.63/3.13
    # (README, "Forecasting flows the model never saw"). False: the model without it.
    copy_prior: bool = True
    # What the positions of the t1 scale being predicted attend to besides t0 and the coarser t1
    # scales. "self": each other (the query positions of one scale hold only the mask token, so
    # this leaks nothing; it lets them coordinate; models/nsp.py). "none": strictly earlier
    # scales only, as the SPEC states it (a t1 scale's content positions then do not see their
    # own scale either, in every form, so SPEC mode, all-scales mode and cached sampling still
    # compute one function). Default by measurement (README, "Next-scale prediction").
    query_attention: str = "self"
    # The blocks' MLP: "gelu" (GPT-2: Linear, GELU, Linear, hidden mlp_ratio * n_embd) or
    # "swiglu" (the seed's: W_out(SiLU(W_gate x) * W_up x), Shazeer 2020, arXiv:2002.05202, hidden
    # 2/3 * mlp_ratio * n_embd so the parameter count stays that of the GELU MLP).
    mlp: str = "gelu"

    def __post_init__(self):
        n = len(self.scales)
        if not (n == len(self.scale_offsets) == len(self.scale_vocab_sizes)) or n == 0:
            raise ValueError(
                "scales, scale_offsets and scale_vocab_sizes must be non-empty and of equal length"
            )
        for f in ("scales", "scale_offsets", "scale_vocab_sizes"):
            object.__setattr__(self, f, tuple(int(v) for v in getattr(self, f)))
        if any(s < 1 for s in self.scales) or any(v < 1 for v in self.scale_vocab_sizes):
            raise ValueError("scales and vocabulary sizes must be positive")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_head={self.n_head} must divide n_embd={self.n_embd}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.query_attention not in ("self", "none"):
            raise ValueError(
                f"query_attention must be 'self' or 'none', got {self.query_attention!r}"
            )
        if self.mlp not in ("gelu", "swiglu"):
            raise ValueError(f"mlp must be 'gelu' or 'swiglu', got {self.mlp!r}")

    # ---- derived sizes (all static Python values) ----
    @property
    def n_scales(self) -> int:
        return len(self.scales)

    @property
    def scale_lengths(self) -> tuple[int, ...]:
        """Tokens per scale, ``s**2``."""
        return tuple(s * s for s in self.scales)

    @property
    def token_offsets(self) -> tuple[int, ...]:
        """Start of each scale inside a frame's row of tokens."""
        return tuple(int(v) for v in np.cumsum((0,) + self.scale_lengths[:-1]))

    @property
    def tokens_per_frame(self) -> int:
        return sum(self.scale_lengths)

    @property
    def vocab_size(self) -> int:
        """Rows of the unified codebook (the largest id + 1)."""
        return max(o + v for o, v in zip(self.scale_offsets, self.scale_vocab_sizes, strict=True))

    @property
    def trainable_scales(self) -> tuple[int, ...]:
        """Scales with more than one possible token: they get a head and a loss."""
        return tuple(i for i, v in enumerate(self.scale_vocab_sizes) if v > 1)

    @property
    def content_scales(self) -> tuple[int, ...]:
        """t1 scales some later trainable scale reads (all scales before the last trainable one)."""
        last = max(self.trainable_scales, default=0)
        return tuple(range(last))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for f in ("scales", "scale_offsets", "scale_vocab_sizes"):
            d[f] = list(d[f])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NSPConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown NSPConfig fields: {sorted(unknown)}")
        # checkpoints written before the field existed hold the seed's design
        d = {"t0_same_position": False, "copy_prior": False, **d}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    @classmethod
    def from_tokens(
        cls, tokens: Mapping[str, Any], *, preset: str | None = None, **overrides: Any
    ) -> NSPConfig:
        """Build the configuration from a tokens file's fields (``np.load`` result or a dict).

        ``preset`` ("spec" or "cpu") sets the trunk size; ``overrides`` (n_layer, n_head, n_embd,
        mlp_ratio, dropout, t0_same_position, copy_prior, query_attention, mlp) win over the preset.
        """
        fields: dict[str, Any] = _preset(preset) if preset is not None else {}
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls(
            scales=tuple(int(s) for s in np.asarray(tokens["scales"]).ravel()),
            scale_offsets=tuple(int(s) for s in np.asarray(tokens["scale_offsets"]).ravel()),
            scale_vocab_sizes=tuple(
                int(s) for s in np.asarray(tokens["scale_vocab_sizes"]).ravel()
            ),
            codebook_dim=int(np.asarray(tokens["codebook"]).shape[-1]),
            **fields,
        )


_preset = preset  # NSPConfig.from_tokens has a parameter named `preset`
