"""Entropy coder: exact round trips, table serialisation, context choice that pays."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqturb.codec.entropy import (
    EntropyCodec,
    pack_counts,
    previous_frames,
    quantize_frequencies,
    unpack_counts,
    varint_decode,
    varint_encode,
)
from vqturb.errors import InputError


def _correlated_tokens(rng, n, scales=(1, 2, 4, 8), n_symbols=(4, 8, 16, 32), noise=2):
    """Child tokens follow their parent (plus noise), as in a residual multi-scale quantiser."""
    toks = [rng.integers(0, n_symbols[0], (n, scales[0], scales[0]))]
    for k in range(1, len(scales)):
        s, sp = scales[k], scales[k - 1]
        i = np.arange(s) * sp // s
        up = toks[-1][:, i][:, :, i]
        t = (up * n_symbols[k] // n_symbols[k - 1] + rng.integers(0, noise + 1, (n, s, s))) % (
            n_symbols[k]
        )
        toks.append(t)
    return toks, n_symbols


@given(st.lists(st.integers(0, 2**62), max_size=50))
def test_varint_round_trip(values):
    v = np.array(values, dtype=np.int64)
    assert np.array_equal(varint_decode(varint_encode(v), v.size), v)


@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31), st.floats(0, 1))
@settings(max_examples=30, deadline=None)
def test_count_table_round_trip(rows, cols, seed, density):
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 1000, (rows, cols)) * (rng.random((rows, cols)) < density)
    assert np.array_equal(unpack_counts(pack_counts(c), (rows, cols)), c)


def test_quantized_frequencies_sum_and_floor(rng):
    w = rng.random((5, 300)) * (rng.random((5, 300)) < 0.1)
    f = quantize_frequencies(w, 12)
    assert np.all(f.sum(-1) == 4096)
    assert f.min() >= 1  # unseen-but-valid symbols stay codable


@given(st.integers(0, 2**31), st.integers(1, 6), st.booleans())
@settings(max_examples=25, deadline=None)
def test_round_trip_is_exact(seed, n, held):
    rng = np.random.default_rng(seed)
    train, ns = _correlated_tokens(rng, 20)
    # fields to code are drawn independently, and may use symbols never seen in training
    data = [rng.integers(0, v, (n, s, s)) for v, s in zip(ns, (1, 2, 4, 8), strict=True)]
    heldout = [t[:5] for t in train] if held else None
    codec = EntropyCodec.fit(train, ns, heldout=heldout)
    out = codec.decode(codec.encode(data), n)
    assert all(np.array_equal(a, b) for a, b in zip(data, out, strict=True))


def test_one_symbol_alphabets_cost_nothing(rng):
    ns = (1, 1, 5)
    data = [rng.integers(0, v, (7, s, s)) for v, s in zip(ns, (1, 2, 4), strict=True)]
    codec = EntropyCodec.fit(data, ns)
    out = codec.decode(codec.encode(data), 7)
    assert all(np.array_equal(a, b) for a, b in zip(data, out, strict=True))
    assert codec.code_bits(data)[:2] == [0.0, 0.0]


def _row_walks(rng, n, s=8, v=16):
    """Single-scale tokens whose left neighbour predicts them (a spatially smooth field)."""
    steps = rng.integers(-1, 2, (n, s, s))
    steps[:, :, 0] = rng.integers(0, v, (n, s))
    return [np.cumsum(steps, axis=2) % v], (v,)


def test_west_context_for_a_single_scale(rng):
    train, ns = _row_walks(rng, 300)
    codec = EntropyCodec.fit(train, ns)
    assert codec.models[0].context == "west"
    marginal = EntropyCodec.fit(train, ns, contexts=("none",))
    assert len(codec.encode(train)) < 0.7 * len(marginal.encode(train))
    data, _ = _row_walks(rng, 5)
    out = codec.decode(codec.encode(data), 5)
    assert np.array_equal(out[0], data[0])


@given(st.integers(0, 2**31), st.sampled_from(["none", "parent", "west", "prev"]))
@settings(max_examples=24, deadline=None)
def test_every_context_kind_round_trips(seed, kind):
    rng = np.random.default_rng(seed)
    train, ns = _correlated_tokens(rng, 15)
    prev = previous_frames(np.zeros(15), np.arange(15))
    codec = EntropyCodec.fit(train, ns, prev=prev, contexts=("none", kind), n_fields=10**6)
    data = [rng.integers(0, v, (5, s, s)) for v, s in zip(ns, (1, 2, 4, 8), strict=True)]
    # fields 0..4: two short runs (0, 1, 2) and (3, 4)
    p5 = previous_frames(np.array([0, 0, 0, 1, 1]), np.array([0, 1, 2, 0, 1]))
    again = EntropyCodec.from_parts(codec.descriptor(), codec.tables())
    out = again.decode(codec.encode(data, p5), 5, p5)
    assert all(np.array_equal(a, b) for a, b in zip(data, out, strict=True))


def _slow_movies(rng, n_traj=6, n_t=20, v=32):
    """Two scales whose tokens change little from one frame to the next (a slow flow)."""
    toks, traj, tidx = [[], []], [], []
    for j in range(n_traj):
        a = rng.integers(0, v, (2, 2)), rng.integers(0, v, (4, 4))
        for t in range(n_t):
            for k in range(2):
                flip = rng.random(a[k].shape) < 0.1
                a[k][flip] = rng.integers(0, v, int(flip.sum()))
                toks[k].append(a[k].copy())
            traj.append(j)
            tidx.append(t)
    return [np.stack(x) for x in toks], (v, v), np.array(traj), np.array(tidx)


def test_previous_frames():
    prev = previous_frames(np.array([0, 0, 1, 0, 1]), np.array([0, 1, 0, 3, 1]))
    assert prev.tolist() == [-1, 0, -1, -1, 2]
    # a previous frame stored later in the list is not usable (the decoder has not seen it)
    assert previous_frames(np.array([0, 0]), np.array([1, 0])).tolist() == [-1, -1]


def test_prev_context_for_time_series(rng):
    toks, ns, traj, tidx = _slow_movies(rng)
    prev = previous_frames(traj, tidx)
    codec = EntropyCodec.fit(toks, ns, prev=prev, n_fields=len(traj))
    assert [m.context for m in codec.models] == ["prev", "prev"]
    per_field = EntropyCodec.fit(toks, ns)  # no prev given: no temporal context
    assert "prev" not in [m.context for m in per_field.models]
    payload = codec.encode(toks, prev)
    assert len(payload) < 0.6 * len(per_field.encode(toks))
    again = EntropyCodec.from_parts(codec.descriptor(), codec.tables())
    out = again.decode(payload, len(traj), prev)
    assert all(np.array_equal(a, b) for a, b in zip(toks, out, strict=True))
    with pytest.raises(ValueError, match="prev"):
        codec.encode(toks)


def test_serialised_codec_decodes_identically(rng):
    train, ns = _correlated_tokens(rng, 200)
    codec = EntropyCodec.fit(train, ns)
    payload = codec.encode(train)
    again = EntropyCodec.from_parts(codec.descriptor(), codec.tables())
    out = again.decode(payload, 200)
    assert all(np.array_equal(a, b) for a, b in zip(train, out, strict=True))
    assert again.encode(train) == payload


def test_parent_context_chosen_when_it_pays(rng):
    train, ns = _correlated_tokens(rng, 400)
    codec = EntropyCodec.fit(train, ns)
    assert [m.context for m in codec.models][1:] == ["parent"] * 3
    marginal = EntropyCodec.fit(train, ns, contexts=("none",))
    assert len(codec.encode(train)) < 0.8 * len(marginal.encode(train))


def test_independent_uniform_tokens_store_no_table(rng):
    ns = (4, 8, 16, 32)
    train = [rng.integers(0, v, (300, s, s)) for v, s in zip(ns, (1, 2, 4, 8), strict=True)]
    codec = EntropyCodec.fit(train, ns)
    # a table costs bytes and buys nothing on independent, uniform tokens
    assert [m.context for m in codec.models] == ["none"] * 4
    assert all(m.counts.sum() == 0 for m in codec.models)
    assert sum(len(t) for t in codec.tables()) <= 4 * 12
    bits = 8 * len(codec.encode(train))
    assert (
        bits
        <= 1.01 * 300 * sum(s * s * np.log2(v) for v, s in zip(ns, (1, 2, 4, 8), strict=True)) + 64
    )


def test_skewed_marginal_is_stored(rng):
    p = np.array([0.7, 0.1, 0.1, 0.05, 0.05])
    train = [rng.choice(5, size=(400, 4, 4), p=p)]
    codec = EntropyCodec.fit(train, (5,), contexts=("none",))
    assert codec.models[0].counts.sum() > 0


def test_code_length_close_to_ideal(rng):
    train, ns = _correlated_tokens(rng, 300)
    codec = EntropyCodec.fit(train, ns)
    ideal = sum(codec.code_bits(train)) / 8
    assert abs(len(codec.encode(train)) - ideal) <= 0.01 * ideal + 8


def test_out_of_range_symbol_is_an_input_error(rng):
    train, ns = _correlated_tokens(rng, 20)
    codec = EntropyCodec.fit(train, ns)
    bad = [t.copy() for t in train]
    bad[2][0, 0, 0] = ns[2]
    with pytest.raises(InputError, match="scale 2"):
        codec.encode(bad)
