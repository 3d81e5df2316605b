"""``VQVAEConfig``: every hyperparameter of VQVAE2d / VARVQVAE2d, validated, JSON round-trippable."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from vqturb.errors import InputError
from vqturb.models.conv import PADDING_MODES

UPSAMPLE_MODES = ("bicubic", "bilinear", "nearest")

# Named starting points; ``VQVAEConfig.preset(name, **overrides)`` (flags given by the user win).
PRESETS: dict[str, dict[str, Any]] = {
    # The SPEC defaults (a GPU configuration: 256² fields, 16x down to a 16x16 latent grid).
    "default": {},
    # Learns something useful in minutes on 2 CPU cores: 64² fields, 8x down to an 8x8 grid.
    "cpu": dict(
        resolution=64,
        base_channels=32,
        channel_mult=(1, 2, 2),
        num_res_blocks=1,
        hidden_dim=64,
        codebook_dim=16,
        vocab_size=256,
        scales=(1, 2, 4, 8),
        norm_groups=8,
    ),
}


def _fmt(seq) -> str:
    return ",".join(str(v) for v in seq)


@dataclass(frozen=True)
class VQVAEConfig:
    """Model hyperparameters (SPEC flags first, then extras). Frozen, hashable, JSON-safe."""

    in_channels: int = 1  # channels of the input field (1: vorticity)
    hidden_dim: int = (
        512  # --hidden_dim: width of the bottleneck blocks (encoder end, decoder start)
    )
    codebook_dim: int = 64  # --codebook_dim: dimension D of each code vector (latent channels)
    vocab_size: int = 512  # --vocab_size: codes per codebook
    base_channels: int = 128  # --base_channels: width of the first (full-resolution) stage
    channel_mult: tuple[int, ...] = (
        1,
        2,
        4,
        4,
    )  # --channel_mult: width multipliers, one 2x down each
    num_res_blocks: int = 2  # --num_res_blocks: residual blocks per resolution stage
    var_mode: bool = False  # --var_mode: multi-scale residual quantizer (VARVQVAE2d)
    scales: tuple[int, ...] = (1, 2, 4, 8, 16)  # --scales: VAR side lengths, last = latent grid
    resolution: int = 256  # side length of the input fields the model is built for
    shared_codebook: bool = True  # VAR: one codebook for all scales (False: one per scale)
    num_phi: int = 4  # VAR: number of partially shared 3x3 refinement convs phi (0: none)
    phi_ratio: float = 0.5  # VAR: blend h <- (1 - r) h + r phi(h) (Tian et al. 2024 use 0.5)
    upsample: str = "bicubic"  # VAR: periodic upsampling of each scale's code map to the grid
    attention: bool = False  # self-attention block at the bottleneck (encoder and decoder)
    attention_heads: int = 1  # heads of that attention block
    group_norm: bool = True  # GroupNorm before each activation (False: no normalisation)
    norm_groups: int = 32  # at most this many groups (largest divisor of the width)
    padding_mode: str = "circular"  # conv padding: "circular" (periodic fields) or "zeros"
    remat: bool = False  # recompute residual-block activations in the backward pass (less memory)
    # Stage = strided conv, then its residual blocks (False: blocks at the stage's input
    # resolution, then the strided conv). True is the default: at the cpu preset it trained 2.3x
    # faster to the same validation error (rel. L2 0.518 vs 0.522 after 300 steps on the demo
    # data), and it makes the SPEC default ~4x cheaper at 256² (8.1 vs 32.9 s per image on CPU).
    downsample_first: bool = True
    decay: float = 0.99  # --decay: EMA decay of codebook statistics
    laplace_eps: float = 1e-5  # Laplace smoothing of EMA code counts
    commitment_weight: float = 0.25  # --commitment_weight (beta): applied by the trainer
    # Restart codes whose EMA count < this x the mean count (0: never). 0.3 rather than 0.05: on
    # the cpu preset (64², 200 steps) it gave codebook perplexity 154 vs 22 and test relative L2
    # 0.24 vs 0.31, restarts kicking in ~100 steps earlier with few restarts after (Jukebox's
    # absolute threshold of 1 vector/step is ~0.5 of the mean at this batch size).
    dead_code_threshold: float = 0.3

    def __post_init__(self):
        # Accept lists (from JSON / argparse) but store tuples so the config stays hashable.
        for name in ("channel_mult", "scales"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        positive = (
            "in_channels",
            "hidden_dim",
            "codebook_dim",
            "base_channels",
            "num_res_blocks",
            "resolution",
            "attention_heads",
            "norm_groups",
        )
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InputError(None, f"--{name}", repr(v), "a positive integer")
        if self.vocab_size < 2:
            raise InputError(None, "--vocab_size", repr(self.vocab_size), "an integer >= 2")
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise InputError(
                None, "--channel_mult", _fmt(self.channel_mult), "positive integers, e.g. 1,2,4,4"
            )
        if self.resolution % self.downsample_factor:
            raise InputError(
                None,
                "--resolution",
                f"{self.resolution} not divisible by the downsampling factor "
                f"{self.downsample_factor} (2**len(channel_mult))",
                f"a multiple of {self.downsample_factor}",
            )
        if self.padding_mode not in PADDING_MODES:
            raise InputError(
                None, "--padding_mode", repr(self.padding_mode), " or ".join(PADDING_MODES)
            )
        if self.upsample not in UPSAMPLE_MODES:
            raise InputError(None, "--upsample", repr(self.upsample), " or ".join(UPSAMPLE_MODES))
        if not 0.0 <= self.decay < 1.0:
            raise InputError(None, "--decay", repr(self.decay), "a number in [0, 1)")
        if self.laplace_eps < 0:
            raise InputError(None, "laplace_eps", repr(self.laplace_eps), "a number >= 0")
        if self.commitment_weight < 0:
            raise InputError(None, "--commitment_weight", repr(self.commitment_weight), ">= 0")
        if not 0.0 <= self.dead_code_threshold < 1.0:
            raise InputError(
                None, "dead_code_threshold", repr(self.dead_code_threshold), "in [0, 1)"
            )
        if self.num_phi < 0 or not 0.0 <= self.phi_ratio <= 1.0:
            raise InputError(
                None, "num_phi/phi_ratio", f"{self.num_phi}/{self.phi_ratio}", ">= 0 and in [0, 1]"
            )
        if self.hidden_dim % self.attention_heads and self.attention:
            raise InputError(
                None,
                "attention_heads",
                f"{self.attention_heads}",
                f"a divisor of {self.hidden_dim}",
            )
        if self.var_mode:
            self._check_scales()

    def _check_scales(self):
        s, latent = self.scales, self.latent_size
        if not s or min(s) < 1:
            raise InputError(None, "--scales", _fmt(s), "positive integers, e.g. 1,2,4,8,16")
        if any(b <= a for a, b in zip(s, s[1:], strict=False)):
            raise InputError(None, "--scales", _fmt(s), "strictly increasing side lengths")
        if s[-1] != latent:
            raise InputError(
                None,
                "--scales",
                f"{_fmt(s)} (last {s[-1]})",
                f"the last scale equal to the latent grid {latent} = {self.resolution} / "
                f"{self.downsample_factor}",
            )

    @property
    def downsample_factor(self) -> int:
        """Input side length / latent side length: 2 ** len(channel_mult)."""
        return 2 ** len(self.channel_mult)

    @property
    def latent_size(self) -> int:
        """Side length of the latent grid for ``resolution``² inputs."""
        return self.resolution // self.downsample_factor

    @property
    def model_scales(self) -> tuple[int, ...]:
        """The scales the model really quantizes: ``scales`` in VAR mode, else the latent grid."""
        return self.scales if self.var_mode else (self.latent_size,)

    @property
    def tokens_per_field(self) -> int:
        return sum(s * s for s in self.model_scales)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VQVAEConfig:
        """Inverse of ``to_dict``; unknown keys are an error (a checkpoint from another version)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(
                None, "model config", f"unknown keys {unknown}", f"keys among {sorted(names)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> VQVAEConfig:
        """A named configuration (``"default"``: SPEC, ``"cpu"``: small CPU demo) with overrides."""
        if name not in PRESETS:
            raise InputError(None, "--preset", repr(name), " or ".join(PRESETS))
        return cls(**{**PRESETS[name], **overrides})

    def replace(self, **changes: Any) -> VQVAEConfig:
        return dataclasses.replace(self, **changes)
