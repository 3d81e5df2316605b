"""Optimisers and learning-rate schedules shared by both trainers."""

import math

import numpy as np
import pytest

from vqturb.errors import InputError
from vqturb.training.optim import OptimConfig, learning_rate_schedule, make_optimizer


def test_warmup_then_cosine_to_the_floor():
    cfg = OptimConfig(lr=1e-3, warmup_steps=10, lr_schedule="cosine", lr_min_ratio=0.01)
    sched = learning_rate_schedule(cfg, total_steps=110)
    lr = np.array([float(sched(s)) for s in range(0, 111)])
    # linear warm-up from 0 to the peak
    np.testing.assert_allclose(lr[:11], 1e-3 * np.arange(11) / 10, rtol=1e-6, atol=1e-12)
    # half-cosine from the peak to 1% of it at the last step, monotone in between
    mid = 10 + 50
    np.testing.assert_allclose(lr[mid], 1e-5 + 0.5 * (1e-3 - 1e-5), rtol=1e-5)
    np.testing.assert_allclose(lr[110], 1e-5, rtol=1e-5)
    assert np.all(np.diff(lr[10:]) <= 1e-12)


def test_constant_schedule_keeps_the_peak_after_warmup():
    sched = learning_rate_schedule(OptimConfig(lr=3e-4, warmup_steps=4), total_steps=100)
    assert float(sched(0)) == 0.0
    assert math.isclose(float(sched(2)), 1.5e-4, rel_tol=1e-6)
    assert all(math.isclose(float(sched(s)), 3e-4, rel_tol=1e-6) for s in (4, 50, 99, 1000))
    assert float(learning_rate_schedule(OptimConfig(lr=2e-4), 10)(0)) == pytest.approx(2e-4)


@pytest.mark.parametrize(
    "kw, flag",
    [
        ({"optimizer": "rmsprop"}, "--optimizer"),
        ({"lr": -1.0}, "--lr"),
        ({"lr": float("nan")}, "--lr"),
        ({"lr_schedule": "linear"}, "--lr_schedule"),
        ({"weight_decay": 0.1}, "--weight_decay"),  # adam has no decoupled decay
        ({"warmup_steps": -3}, "--warmup_steps"),
        ({"lr_min_ratio": 2.0}, "--lr_min_ratio"),
        ({"grad_clip": -1.0}, "--grad_clip"),
    ],
)
def test_meaningless_settings_name_their_flag(kw, flag):
    with pytest.raises(InputError, match=flag):
        OptimConfig(**kw)


def test_weight_decay_shrinks_parameters_without_gradient():
    import jax.numpy as jnp

    for name in ("adamw", "lion"):
        opt = make_optimizer(
            OptimConfig(optimizer=name, lr=0.1, weight_decay=0.5, grad_clip=None), 10
        )
        params = {"w": jnp.ones(3)}
        updates, _ = opt.update({"w": jnp.zeros(3)}, opt.init(params), params)
        # decoupled decay: the update is -lr * wd * w when the gradient is zero
        np.testing.assert_allclose(np.asarray(updates["w"]), -0.05 * np.ones(3), rtol=1e-5)
