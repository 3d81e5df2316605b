import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

from vqturb import checkpoint as ck
from vqturb.errors import InputError


def _build_mlp(config):
    return eqx.nn.MLP(
        config["in"], config["out"], config["width"], config["depth"], key=jr.PRNGKey(0)
    )


CFG = {"in": 3, "out": 2, "width": 8, "depth": 2}


@pytest.fixture(autouse=True)
def mlp_kind():
    with ck.registered_kind("test-mlp", _build_mlp):
        yield


def _leaves_equal(a, b):
    la = jax.tree_util.tree_leaves(eqx.filter(a, eqx.is_array))
    lb = jax.tree_util.tree_leaves(eqx.filter(b, eqx.is_array))
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


def test_model_round_trip_without_flags(tmp_path):
    model = eqx.nn.MLP(3, 2, 8, 2, key=jr.PRNGKey(42))  # other weights than the builder's
    path = tmp_path / "m.eqx"
    ck.save_model(path, model, kind="test-mlp", config=CFG, meta={"norm": {"mean": 1.5}})
    loaded, header = ck.load_model(path)
    assert _leaves_equal(model, loaded)
    assert header["meta"]["norm"]["mean"] == 1.5
    assert header["kind"] == "test-mlp" and header["format_version"] == ck.FORMAT_VERSION
    x = jnp.ones(3)
    np.testing.assert_array_equal(model(x), loaded(x))


def test_wrong_kind_corrupt_and_mismatched_checkpoints(tmp_path):
    model = eqx.nn.MLP(3, 2, 8, 2, key=jr.PRNGKey(1))
    path = tmp_path / "m.eqx"
    ck.save_model(path, model, kind="test-mlp", config=CFG)
    with pytest.raises(InputError, match="'vqvae' checkpoint"):
        ck.load_model(path, kind="vqvae")
    (tmp_path / "junk.eqx").write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="VQTURB-CKPT"):
        ck.load_model(tmp_path / "junk.eqx")
    data = path.read_bytes()
    (tmp_path / "trunc.eqx").write_bytes(data[: len(data) - 40])
    with pytest.raises(InputError, match="corrupted or truncated"):
        ck.load_model(tmp_path / "trunc.eqx")
    bigger = eqx.nn.MLP(3, 2, 16, 2, key=jr.PRNGKey(1))
    ck.save_model(tmp_path / "big.eqx", bigger, kind="test-mlp", config=CFG)  # header lies
    with pytest.raises(InputError):
        ck.load_model(tmp_path / "big.eqx")
    with pytest.raises(InputError, match="unknown kind"):
        ck.save_model(tmp_path / "u.eqx", model, kind="nope", config={})
        ck.load_model(tmp_path / "u.eqx")


def test_state_round_trip_and_latest(tmp_path):
    model = eqx.nn.MLP(3, 2, 8, 2, key=jr.PRNGKey(1))
    opt = optax.adam(1e-3)
    opt_state = opt.init(eqx.filter(model, eqx.is_array))
    state = {"opt": opt_state, "step": jnp.asarray(7), "key": jr.PRNGKey(3)}
    for step in (5, 10, 15):
        mp, sp = ck.checkpoint_paths(tmp_path, step)
        ck.save_model(mp, model, kind="test-mlp", config=CFG, meta={"step": step})
        if step != 15:  # an interrupted save: model without state is not "complete"
            ck.save_state(sp, state)
    assert ck.latest_checkpoint(tmp_path) == ck.checkpoint_paths(tmp_path, 10)[0]
    loaded, _ = ck.load_state(ck.checkpoint_paths(tmp_path, 10)[1], state)
    assert int(loaded["step"]) == 7
    assert _leaves_equal(loaded["opt"], opt_state)
    ck.prune_checkpoints(tmp_path, keep=1)
    assert ck.list_checkpoints(tmp_path) == [10]


def test_flipped_payload_byte_is_caught_by_the_checksum(tmp_path):
    model = eqx.nn.MLP(3, 2, 8, 2, key=jr.PRNGKey(1))
    path = tmp_path / "m.eqx"
    ck.save_model(path, model, kind="test-mlp", config=CFG)
    ck.save_state(tmp_path / "s.eqx", {"w": jnp.arange(4.0)})
    for p, load in (
        (path, ck.load_model),
        (tmp_path / "s.eqx", lambda p: ck.load_state(p, {"w": jnp.zeros(4)})),
    ):
        data = bytearray(p.read_bytes())
        data[-3] ^= 0x01  # one bit of the last leaf: deserialises fine, wrong number
        bad = tmp_path / f"bad_{p.name}"
        bad.write_bytes(bytes(data))
        with pytest.raises(InputError, match="SHA-256") as err:
            load(bad)
        assert str(bad) in str(err.value) and "\n" not in str(err.value)
        load(p)  # the intact file still loads


def test_version_1_files_without_checksum_still_load(tmp_path):
    """A file written before the checksum (format 1: the same layout, no payload_sha256)."""
    import io
    import json

    model = eqx.nn.MLP(3, 2, 8, 2, key=jr.PRNGKey(5))
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, model)
    header = {"format_version": 1, "kind": "test-mlp", "config": CFG, "meta": {}}
    path = tmp_path / "v1.eqx"
    path.write_bytes(ck.MAGIC + json.dumps(header).encode() + b"\n" + buf.getvalue())
    loaded, _ = ck.load_model(path)
    assert _leaves_equal(model, loaded)


def test_registered_kind_is_temporary_and_restores_the_builtin(tmp_path):
    model = eqx.nn.MLP(3, 2, 8, 2, key=jr.PRNGKey(1))
    ck.save_model(tmp_path / "m.eqx", model, kind="vqvae", config=CFG)
    with ck.registered_kind("vqvae", _build_mlp):
        loaded, _ = ck.load_model(tmp_path / "m.eqx", kind="vqvae")
        assert _leaves_equal(model, loaded)
    with pytest.raises(InputError):  # the built-in VQ-VAE builder is back: this config is not one
        ck.load_model(tmp_path / "m.eqx", kind="vqvae")
    with ck.registered_kind("brand-new", _build_mlp):
        pass
    ck.save_model(tmp_path / "n.eqx", model, kind="brand-new", config=CFG)
    with pytest.raises(InputError, match="unknown kind"):
        ck.load_model(tmp_path / "n.eqx")
