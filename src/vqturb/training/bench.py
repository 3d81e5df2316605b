"""Training-step throughput of the VQ-VAE (`vqturb bench train`).

Reports images/s (median over timed steps, after compilation), ms/step, the model's GFLOP per step
from XLA's cost analysis of the compiled step, the achieved GFLOP/s, and this machine's dense
matmul GFLOP/s measured in the same run, so the fraction of attainable throughput is visible.
"""

from __future__ import annotations

import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from vqturb.models import VQVAEConfig, build_model, trainable_spec
from vqturb.training.loop import train_step
from vqturb.training.optim import OptimConfig, make_optimizer
from vqturb.training.vqvae_task import VQVAEObjective


def matmul_gflops(n: int = 2048, repeats: int = 5, dtype=jnp.float32) -> float:
    """Dense ``n×n @ n×n`` matmul throughput in GFLOP/s (median of ``repeats``)."""
    a = jr.normal(jr.PRNGKey(0), (n, n), dtype)
    b = jr.normal(jr.PRNGKey(1), (n, n), dtype)
    f = jax.jit(lambda x, y: x @ y)
    f(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(a, b).block_until_ready()
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def step_flops(step_fn, *args) -> float | None:
    """FLOPs of one compiled call from XLA's cost analysis (None when the backend has none)."""
    try:
        compiled = step_fn.lower(*args).compile()
        # eqx.filter_jit wraps JAX's Compiled object in ``.compiled``
        compiled = getattr(compiled, "compiled", compiled)
        cost = compiled.cost_analysis()
    except Exception:  # cost analysis is best-effort and backend-dependent
        return None
    if isinstance(cost, list):
        cost = cost[0] if cost else {}
    flops = (cost or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def bench_train(
    model_cfg: VQVAEConfig,
    *,
    resolution: int,
    batch_size: int,
    steps: int = 10,
    precision: str = "fp32",
    lr: float = 1e-4,
    seed: int = 0,
) -> dict:
    """Time ``steps`` training steps on random fields; returns a JSON-safe dict of figures."""
    key = jr.PRNGKey(seed)
    model = build_model(model_cfg, key=key)
    optimizer = make_optimizer(OptimConfig(optimizer="adam", lr=lr), steps + 1)
    opt_state = optimizer.init(eqx.filter(model, trainable_spec(model)))
    objective = VQVAEObjective(beta=model_cfg.commitment_weight, precision=precision)
    shape = (batch_size, resolution, resolution)

    def batch():  # a fresh buffer per step: the step donates its inputs
        return jr.normal(jr.PRNGKey(seed + 1), shape, jnp.float32)

    # cost analysis first, on arguments that are not donated afterwards
    flops = step_flops(train_step, objective, model, opt_state, batch(), jr.key(0), optimizer)
    t0 = time.perf_counter()
    model, opt_state, m = train_step(objective, model, opt_state, batch(), jr.key(0), optimizer)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(steps):
        x, k = jax.block_until_ready((batch(), jr.key(i + 1)))
        t = time.perf_counter()
        model, opt_state, m = train_step(objective, model, opt_state, x, k, optimizer)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    mm = matmul_gflops()
    n_params = sum(
        x.size
        for x in jax.tree_util.tree_leaves(eqx.filter(model, trainable_spec(model)))
        if eqx.is_array(x)
    )
    out = {
        "bench": "train",
        "model": "VARVQVAE2d" if model_cfg.var_mode else "VQVAE2d",
        "resolution": resolution,
        "batch_size": batch_size,
        "precision": precision,
        "device": str(jax.devices()[0].device_kind),
        "n_devices": jax.device_count(),
        "params": int(n_params),
        "steps_timed": steps,
        "compile_s": round(compile_s, 2),
        "ms_per_step": round(1e3 * med, 2),
        "images_per_s": round(batch_size / med, 3),
        "gflop_per_step": None if flops is None else round(flops / 1e9, 2),
        "achieved_gflops": None if flops is None else round(flops / med / 1e9, 2),
        "matmul_gflops": round(mm, 1),
    }
    if flops is not None:
        out["fraction_of_matmul"] = round(flops / med / 1e9 / mm, 3)
    return out
