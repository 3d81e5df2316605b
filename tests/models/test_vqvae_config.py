"""VQVAEConfig: JSON round trip, presets, validation errors that name the flag."""

import json

import pytest

from vqturb.errors import InputError
from vqturb.models import VQVAEConfig


def test_defaults_are_the_spec():
    c = VQVAEConfig()
    assert (c.hidden_dim, c.codebook_dim, c.vocab_size, c.base_channels) == (512, 64, 512, 128)
    assert c.channel_mult == (1, 2, 4, 4) and c.num_res_blocks == 2
    assert c.scales == (1, 2, 4, 8, 16) and not c.var_mode and c.commitment_weight == 0.25
    assert c.downsample_factor == 16 and c.latent_size == 16


def test_dict_round_trip_through_json():
    c = VQVAEConfig.preset("cpu", var_mode=True, shared_codebook=False, padding_mode="zeros")
    d = json.loads(json.dumps(c.to_dict()))
    assert isinstance(d["channel_mult"], list)
    c2 = VQVAEConfig.from_dict(d)
    assert c2 == c and hash(c2) == hash(c)
    assert isinstance(c2.scales, tuple)


def test_cpu_preset_is_consistent_and_overridable():
    c = VQVAEConfig.preset("cpu")
    assert c.resolution == 64 and c.scales[-1] == c.latent_size == 8
    VQVAEConfig.preset("cpu", var_mode=True)  # its scales end on its latent grid
    assert VQVAEConfig.preset("cpu", vocab_size=128).vocab_size == 128
    with pytest.raises(InputError, match="--preset"):
        VQVAEConfig.preset("gpu-huge")


@pytest.mark.parametrize(
    "kw,flag",
    [
        (dict(var_mode=True, scales=(1, 2, 4, 8)), "--scales"),  # last != 16
        (dict(var_mode=True, scales=(1, 4, 2, 16)), "--scales"),  # not increasing
        (dict(var_mode=True, scales=(1, 2, 2, 16)), "--scales"),
        (dict(var_mode=True, scales=(0, 16)), "--scales"),
        (dict(resolution=100), "--resolution"),
        (dict(channel_mult=()), "--channel_mult"),
        (dict(hidden_dim=0), "--hidden_dim"),
        (dict(vocab_size=1), "--vocab_size"),
        (dict(decay=1.0), "--decay"),
        (dict(padding_mode="reflect"), "--padding_mode"),
        (dict(upsample="lanczos"), "--upsample"),
    ],
)
def test_bad_flags_raise_input_errors_naming_the_flag(kw, flag):
    with pytest.raises(InputError, match=flag) as e:
        VQVAEConfig(**kw)
    assert "expected" in str(e.value)


def test_scales_are_checked_only_in_var_mode():
    assert VQVAEConfig(scales=(1, 2)).model_scales == (16,)
    assert VQVAEConfig(var_mode=True).tokens_per_field == 1 + 4 + 16 + 64 + 256


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(InputError, match="unknown keys"):
        VQVAEConfig.from_dict({"hidden_dim": 8, "n_layers": 3})
