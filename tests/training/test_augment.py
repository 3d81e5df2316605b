"""Random symmetries of training fields: each is an exact symmetry, drawn per sample, by key."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from vqturb.errors import InputError
from vqturb.training.augment import augment_batch, parse_augment


def _fields(b=6, n=8):
    return jnp.asarray(np.random.default_rng(0).normal(size=(b, n, n)).astype(np.float32))


def _images(x, ops, sign=-1.0):
    """Every image of one field under the group the ops generate (for membership checks)."""
    out = []
    for s in range(x.shape[0]) if "roll" in ops else [0]:
        for t in range(x.shape[1]) if "roll" in ops else [0]:
            r = np.roll(x, (s, t), (0, 1))
            for k in range(4) if "rot90" in ops else [0]:
                q = np.rot90(r, k)
                out.append(q)
                if "mirror" in ops:
                    out.append(sign * q[:, ::-1])
    return out


def test_parse_augment_orders_and_refuses_unknown():
    assert parse_augment("mirror,roll") == ("roll", "mirror")
    assert parse_augment("none") == ()
    with pytest.raises(InputError, match="--augment"):
        parse_augment("roll,flip")


@pytest.mark.parametrize("ops", [("roll",), ("rot90",), ("mirror",), ("roll", "rot90", "mirror")])
def test_each_sample_is_an_image_of_its_field_under_the_group(ops):
    x = _fields()
    y = np.asarray(augment_batch(x, jr.key(1), ops))
    for a, b in zip(np.asarray(x), y, strict=True):
        assert any(np.array_equal(b, img) for img in _images(a, ops)), ops


def test_draws_differ_between_samples_and_repeat_with_the_key():
    x = jnp.broadcast_to(_fields(1)[0], (16, 8, 8))
    ops = ("roll", "rot90", "mirror")
    y = np.asarray(augment_batch(x, jr.key(3), ops))
    assert len({a.tobytes() for a in y}) > 8  # independent draws per field
    np.testing.assert_array_equal(y, np.asarray(augment_batch(x, jr.key(3), ops)))
    assert not np.array_equal(y, np.asarray(augment_batch(x, jr.key(4), ops)))


def test_mirror_negates_about_the_physical_zero():
    x = _fields(64)
    zero = -0.5  # the normalised value of a physical 0
    y = np.asarray(augment_batch(x, jr.key(0), ("mirror",), zero=zero, mirror_sign=-1.0))
    flipped = [i for i in range(64) if not np.array_equal(y[i], np.asarray(x[i]))]
    assert 10 < len(flipped) < 54  # about half
    i = flipped[0]
    np.testing.assert_allclose(y[i], zero - (np.asarray(x[i])[:, ::-1] - zero), rtol=1e-6)
    kept = np.asarray(augment_batch(x, jr.key(0), ("mirror",), mirror_sign=1.0))
    np.testing.assert_array_equal(kept[i], np.asarray(x[i])[:, ::-1])


def test_no_ops_is_the_identity_and_rot90_needs_square_fields():
    x = _fields()
    assert augment_batch(x, jr.key(0), ()) is x
    with pytest.raises(InputError, match="square"):
        augment_batch(jnp.zeros((2, 4, 8)), jr.key(0), ("rot90",))
