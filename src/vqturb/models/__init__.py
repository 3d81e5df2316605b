"""Equinox modules: conv trunk, quantizers, VQVAE2d, VARVQVAE2d, the NSP transformer. No I/O."""

from vqturb.models.autoencoder import Decoder2d, Encoder2d
from vqturb.models.blocks import AttentionBlock2d, ResBlock2d
from vqturb.models.config import PRESETS, VQVAEConfig
from vqturb.models.conv import Conv2d
from vqturb.models.interface import AbstractVQVAE
from vqturb.models.norm import GroupNorm
from vqturb.models.quantizer import MultiScaleQuantizer2d, Quantizer2d
from vqturb.models.vqvae import (
    AbstractEMAVQVAE,
    QuantOutput,
    VARVQVAE2d,
    VQVAE2d,
    build_model,
    ema_update,
    kmeans_init,
    trainable_spec,
)

# NSP exports (models/nsp.py, owned by the NSP helper) are added below by its owner.

__all__ = [
    "PRESETS",
    "AbstractEMAVQVAE",
    "AbstractVQVAE",
    "AttentionBlock2d",
    "Conv2d",
    "Decoder2d",
    "Encoder2d",
    "GroupNorm",
    "MultiScaleQuantizer2d",
    "QuantOutput",
    "Quantizer2d",
    "ResBlock2d",
    "VARVQVAE2d",
    "VQVAE2d",
    "VQVAEConfig",
    "build_model",
    "ema_update",
    "kmeans_init",
    "trainable_spec",
]
