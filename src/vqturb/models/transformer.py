"""Pre-LN transformer block (GPT-2) with an explicit boolean mask or a key/value prefix (cache), and
the GPT-2 initialisation of its linear layers."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from vqturb.models.nsp_masks import key_prefix_blocks


def gpt2_linear(in_f: int, out_f: int, std: float, *, key: PRNGKeyArray) -> eqx.nn.Linear:
    """Linear layer with N(0, std^2) weights and zero bias (GPT-2 initialisation)."""
    k_lin, k_w = jr.split(key)
    lin = eqx.nn.Linear(in_f, out_f, key=k_lin)
    w = std * jr.normal(k_w, (out_f, in_f))
    return eqx.tree_at(lambda m: (m.weight, m.bias), lin, (w, jnp.zeros(out_f)))


# Per-layer key/value cache: keys and values ``[P, n_head, head_dim]`` for P cached positions.
KV = tuple[Float[Array, "_p h d"], Float[Array, "_p h d"]]


class Block(eqx.Module):
    """Pre-LN transformer block (GPT-2): x + Attn(LN(x)), then x + MLP(LN(x)).

    Attention takes an explicit boolean mask, or a key/value prefix (the cache) that every query
    may read in full plus the block's own positions.
    """

    ln1: eqx.nn.LayerNorm
    qkv: eqx.nn.Linear
    attn_out: eqx.nn.Linear
    ln2: eqx.nn.LayerNorm
    fc: eqx.nn.Linear
    fc_out: eqx.nn.Linear
    n_head: int = eqx.field(static=True)
    dropout: float = eqx.field(static=True)
    mlp: str = eqx.field(static=True)  # "gelu" (GPT-2) or "swiglu" (fc holds gate and up)

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        mlp_ratio: int,
        dropout: float,
        n_layer: int,
        *,
        mlp: str = "gelu",
        key,
    ):
        k_qkv, k_out, k_fc, k_fc_out = jr.split(key, 4)
        # Residual projections scaled by 1/sqrt(2 n_layer) so the stream's variance does not
        # grow with depth (GPT-2, Radford et al. 2019).
        res_std = 0.02 / math.sqrt(2 * n_layer)
        self.ln1 = eqx.nn.LayerNorm(n_embd)
        self.qkv = gpt2_linear(n_embd, 3 * n_embd, 0.02, key=k_qkv)
        self.attn_out = gpt2_linear(n_embd, n_embd, res_std, key=k_out)
        self.ln2 = eqx.nn.LayerNorm(n_embd)
        if mlp == "swiglu":  # 2/3 of the GELU hidden width: the same parameter count
            hidden = max(1, (2 * mlp_ratio * n_embd) // 3)
            self.fc = gpt2_linear(n_embd, 2 * hidden, 0.02, key=k_fc)
        else:
            hidden = mlp_ratio * n_embd
            self.fc = gpt2_linear(n_embd, hidden, 0.02, key=k_fc)
        self.fc_out = gpt2_linear(hidden, n_embd, res_std, key=k_fc_out)
        self.n_head = n_head
        self.dropout = dropout
        self.mlp = mlp

    def _drop(self, x: Float[Array, "l c"], key: PRNGKeyArray | None) -> Float[Array, "l c"]:
        if key is None or self.dropout == 0.0:
            return x
        keep = jr.bernoulli(key, 1.0 - self.dropout, x.shape)
        return jnp.where(keep, x / (1.0 - self.dropout), 0.0)

    def __call__(
        self,
        x: Float[Array, "l c"],
        *,
        mask: Bool[np.ndarray, "l l"] | None = None,
        prefix: KV | None = None,
        see_self: bool = True,
        key: PRNGKeyArray | None = None,
    ) -> tuple[Float[Array, "l c"], tuple[Float[Array, "l h d"], Float[Array, "l h d"]]]:
        """Returns the new residual stream and this block's own keys/values (for a cache).

        ``mask`` restricts attention among the ``l`` positions; ``prefix`` adds cached positions
        every query may attend to (the cached path uses no mask: a block reads the whole prefix
        and, unless ``see_self`` is False, itself).
        """
        n, c = x.shape
        h_dim = c // self.n_head
        k_attn, k_mlp = (None, None) if key is None else jr.split(key)
        h = jax.vmap(self.ln1)(x)
        q, k, v = jnp.split(jax.vmap(self.qkv)(h), 3, axis=-1)
        q, k, v = (a.reshape(n, self.n_head, h_dim) for a in (q, k, v))
        k_all, v_all = k, v
        if prefix is not None and not see_self:
            k_all, v_all = prefix
        elif prefix is not None:
            k_all = jnp.concatenate([prefix[0], k], axis=0)
            v_all = jnp.concatenate([prefix[1], v], axis=0)
        if mask is None:
            a = jax.nn.dot_product_attention(q, k_all, v_all)
        else:
            # Row blocks that only read a prefix of the keys attend to that prefix only: same
            # result as the full masked product, ~30% fewer attention FLOPs on the block-causal
            # layouts (attention dominates the small CPU models).
            blocks = []
            for r0, r1, kend in key_prefix_blocks(mask):
                m = mask[r0:r1, :kend]
                # a fully allowed block (t0 reading t0) needs no mask at all
                m = None if m.all() else jnp.asarray(m)[None]
                blocks.append(
                    jax.nn.dot_product_attention(q[r0:r1], k_all[:kend], v_all[:kend], mask=m)
                )
            a = jnp.concatenate(blocks, axis=0)
        a = a.reshape(n, c)
        x = x + self._drop(jax.vmap(self.attn_out)(a), k_attn)
        h = jax.vmap(self.ln2)(x)
        h = jax.vmap(self.fc)(h)
        if self.mlp == "swiglu":
            gate, up = jnp.split(h, 2, axis=-1)
            h = jax.nn.silu(gate) * up
        else:
            h = jax.nn.gelu(h)
        h = jax.vmap(self.fc_out)(h)
        x = x + self._drop(h, k_mlp)
        return x, (k, v)
