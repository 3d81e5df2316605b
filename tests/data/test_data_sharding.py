"""Sharding on 4 forced host devices (in a subprocess: XLA_FLAGS must be set before JAX loads)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp, numpy as np
    from vqturb.data.sharding import make_mesh, replicate, shard_batch
    from vqturb.errors import InputError

    assert jax.device_count() == 4, jax.devices()
    mesh = make_mesh()
    assert mesh.axis_names == ("data",) and mesh.size == 4

    x = np.arange(8 * 3 * 5, dtype=np.float32).reshape(8, 3, 5)
    xs = shard_batch(x, mesh)
    assert xs.shape == (8, 3, 5)
    shards = sorted(xs.addressable_shards, key=lambda s: s.index[0].start)
    assert len(shards) == 4
    for k, s in enumerate(shards):
        assert s.data.shape == (2, 3, 5)
        np.testing.assert_array_equal(np.asarray(s.data), x[2 * k : 2 * k + 2])

    # a pytree batch (pairs) shards leaf by leaf
    a, b = shard_batch((x, x + 1), mesh)
    assert len({d.id for d in a.devices()}) == 4

    params = {"w": np.ones((3, 5), np.float32), "b": jnp.zeros(5), "name": None}
    rep = replicate(params, mesh)
    assert rep["name"] is None
    assert rep["w"].sharding.is_fully_replicated and len(rep["w"].devices()) == 4

    # a data-parallel computation gives the single-device answer
    @jax.jit
    def loss(p, xb):
        return jnp.mean((xb * p["w"] + p["b"]) ** 2)

    ref = loss({"w": params["w"], "b": np.zeros(5, np.float32)}, x)
    got = loss({"w": rep["w"], "b": rep["b"]}, xs)
    np.testing.assert_allclose(float(got), float(ref), rtol=1e-6)

    # a sub-mesh of two devices
    m2 = make_mesh(jax.devices()[:2])
    assert shard_batch(x[:6], m2).addressable_shards[0].data.shape == (3, 3, 5)

    try:
        shard_batch(x[:6], mesh)
    except InputError as e:
        assert "6" in str(e) and "4 devices" in str(e), str(e)
    else:
        raise AssertionError("batch 6 over 4 devices must fail")
    print("SHARDING_OK")
    """
)


def test_shard_and_replicate_on_four_host_devices():
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    r = subprocess.run(
        [sys.executable, "-W", "error", "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "SHARDING_OK" in r.stdout


def test_single_device_in_process():
    # in-process, so the runtime type checker sees the annotations
    import jax
    import numpy as np

    from vqturb.data.sharding import make_mesh, replicate, shard_batch

    mesh = make_mesh(jax.devices()[:1])
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(np.asarray(shard_batch(x, mesh)), x)
    tree = replicate({"a": x, "b": None, "n": 3}, mesh)
    assert tree["b"] is None and tree["n"] == 3
    np.testing.assert_array_equal(np.asarray(tree["a"]), x)
