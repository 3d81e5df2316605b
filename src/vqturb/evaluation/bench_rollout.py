"""Is the emulator faster than the simulation it learned from? Rollout throughput vs the solver.

Measured in one run, on the same device, at the same resolution and for the same saved interval
``t_save`` between frames:

- NSP rollout in token space (``vqturb.models.nsp_sampling.rollout``, batched, jitted);
- the VQ-VAE decoding of those frames to vorticity fields;
- token rollout + decoding together (what ``eval-nsp`` needs per frame);
- the generator's pseudo-spectral solver (``vqturb.physics.solver.advance_batch``) advancing the
  same number of trajectories by ``t_save`` with its stable time step.

Throughputs are frames per second (one frame = one field of one trajectory one saved interval
later), medians over ``repeats`` timed calls after a compile-and-warm-up call. Ratios > 1 mean the
emulator is faster than the solver. Trained weights do not change the cost, so without
checkpoints the models are built untrained from a preset; the solver's time step does depend on
the flow: it comes from real snapshots when ``data_dir`` is given, otherwise from a random
field with the generator's initial spectrum (stated in the result).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vqturb.errors import InputError


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(first call incl. compilation, median of ``repeats`` further calls), seconds."""
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def _synthetic_models(preset: str, resolution: int | None, vocab: int | None, seed: int):
    """Untrained VAR VQ-VAE and NSP of a preset, with a tokens layout made up to match."""
    import jax.random as jr

    from vqturb.models import VQVAEConfig, build_model
    from vqturb.models.nsp import build_nsp
    from vqturb.models.nsp_config import PRESETS as NSP_PRESETS
    from vqturb.models.nsp_config import NSPConfig

    name = "cpu" if preset == "cpu" else "default"
    over: dict[str, Any] = {"var_mode": True}
    if resolution is not None:
        # the scales follow the latent grid: 1, 2, 4, ..., resolution / downsampling
        probe = VQVAEConfig.preset(name, var_mode=True)
        latent = resolution // probe.downsample_factor
        over["resolution"] = resolution
        over["scales"] = tuple(2**i for i in range(max(latent, 1).bit_length()) if 2**i <= latent)
    vq_cfg = VQVAEConfig.preset(name, **over)
    vocab = vocab or vq_cfg.vocab_size
    # scales of side 1 have a single code in practice (the tokenizer's SPEC run: scales 0-3)
    sizes = tuple(1 if s == 1 else min(vocab, vq_cfg.vocab_size) for s in vq_cfg.scales)
    offsets = tuple(int(v) for v in np.cumsum((0,) + sizes[:-1]))
    k_vq, k_nsp, k_cb = jr.split(jr.key(seed), 3)
    vq = build_model(vq_cfg, key=k_vq)
    nsp_cfg = NSPConfig(
        scales=vq_cfg.scales,
        scale_offsets=offsets,
        scale_vocab_sizes=sizes,
        codebook_dim=vq_cfg.codebook_dim,
        **NSP_PRESETS["cpu" if preset == "cpu" else "spec"],
    )
    codebook = np.asarray(jr.normal(k_cb, (sum(sizes), vq_cfg.codebook_dim)), np.float32)
    nsp = build_nsp(nsp_cfg, codebook, key=k_nsp)
    u2o = np.concatenate([np.arange(v) for v in sizes]).astype(np.int32)
    layout = {"scales": vq_cfg.scales, "scale_offsets": offsets, "scale_vocab_sizes": sizes}
    return vq, vq_cfg.resolution, nsp, layout, u2o, vq_cfg.to_dict(), nsp_cfg.to_dict()


def _random_rows(layout: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    parts = [
        off + rng.integers(0, v, size=(n, s * s))
        for s, off, v in zip(
            layout["scales"], layout["scale_offsets"], layout["scale_vocab_sizes"], strict=True
        )
    ]
    return np.concatenate(parts, axis=1).astype(np.int32)


def benchmark_rollout(
    *,
    nsp_checkpoint: str | os.PathLike | None = None,
    vqvae_checkpoint: str | os.PathLike | None = None,
    tokens_path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    preset: str = "cpu",
    resolution: int | None = None,
    batch: int = 4,
    n_steps: int = 10,
    repeats: int = 3,
    t_save: float | None = None,
    re: float | None = None,
    dt: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Frames/s of NSP rollouts (tokens, decoded) and of the solver, and their ratios.

    Args:
        nsp_checkpoint, vqvae_checkpoint, tokens_path: trained models and their tokens file
            (all three, or none for untrained models of ``preset``).
        data_dir: generated dataset: its ``generate.json`` gives Re, drag, forcing, ``t_save``
            and ``dt``, and its snapshots set the solver's velocity scale (stable time step).
        preset: ``"cpu"`` or ``"spec"`` model sizes when no checkpoints are given.
        resolution: field size of the untrained VQ-VAE (default: the preset's).
        batch: trajectories (samples) advanced together, by both the emulator and the solver.
        n_steps: frames per timed rollout call.
        repeats: timed calls after the warm-up (median reported).
        t_save: simulated time between saved frames (default generate.json's, else 0.1).
        re: Reynolds number (default generate.json's, else 1000).
        dt: solver time step (default: the stable step of the flow, as the generator chooses).
        seed: PRNG seed.

    Returns:
        JSON-safe dict: ``token_frames_per_s``, ``decode_frames_per_s``,
        ``decoded_frames_per_s`` (rollout + decoding), ``solver_frames_per_s``,
        ``speedup_tokens`` and ``speedup_decoded`` (emulator / solver), and the settings used.
    """
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    from vqturb.data.tokens_file import TokensFile
    from vqturb.evaluation.rollout import vqvae_decoder
    from vqturb.models.nsp_sampling import rollout
    from vqturb.physics import solver
    from vqturb.physics.spectral import random_vorticity

    rng = np.random.default_rng(seed)
    given = [p is not None for p in (nsp_checkpoint, vqvae_checkpoint, tokens_path)]
    if any(given) and not all(given):
        raise InputError(
            None,
            "--nsp_checkpoint/--vqvae_checkpoint/--tokens_path",
            "only some given",
            "all three (trained models) or none (untrained models of --preset)",
        )
    if all(given):
        from vqturb import checkpoint

        tokens = TokensFile.read(tokens_path)
        nsp, _ = checkpoint.load_model(nsp_checkpoint, kind="nsp")
        vq, vq_header = checkpoint.load_model(vqvae_checkpoint, kind="vqvae")
        res = int(vq_header["config"].get("resolution", 0)) or None
        idx = rng.choice(
            tokens.indices.shape[0], size=batch, replace=tokens.indices.shape[0] < batch
        )
        t0 = tokens.indices[idx]
        source = "checkpoints"
        model_info = {"vqvae": vq_header["config"], "nsp": nsp.config.to_dict()}
    else:
        vq, res, nsp, layout, u2o, vq_cfg, nsp_cfg = _synthetic_models(
            preset, resolution, None, seed
        )
        tokens = TokensFile(
            indices=np.zeros((0, sum(s * s for s in layout["scales"])), np.int32),
            codebook=np.asarray(nsp.codebook),
            unified_to_original=u2o,
            trajectory_id=np.zeros(0, np.int64),
            time_index=np.zeros(0, np.int64),
            path="<synthetic>",
            **layout,
        )
        t0 = _random_rows(layout, batch, rng)
        source = f"untrained, preset {preset}"
        model_info = {"vqvae": vq_cfg, "nsp": nsp_cfg}

    # ---- emulator: token rollout, then decoding
    key = jr.key(seed)
    t0j = jnp.asarray(t0)
    roll_first, roll_t = _median_time(
        lambda: rollout(nsp, t0j, n_steps, key=key), repeats
    )  # fmt: skip
    frames = np.asarray(rollout(nsp, t0j, n_steps, key=key)).reshape(-1, t0.shape[1])
    decode = vqvae_decoder(vq, tokens, batch_size=batch)
    dec_first, dec_t = _median_time(lambda: decode(frames), repeats)
    field_shape = decode(frames[:1]).shape[-2:]
    if res is None:
        res = int(field_shape[0])
    n_frames = batch * n_steps

    # ---- solver: same resolution, same saved interval, same number of trajectories
    gen: dict[str, Any] = {}
    omega0 = None
    if data_dir is not None:
        gj = Path(data_dir) / "generate.json"
        if gj.is_file():
            gen = json.loads(gj.read_text())
        from vqturb.data import open_dataset

        with open_dataset(data_dir) as ds:
            if ds.shape != (res, res):
                raise InputError(
                    data_dir, "field size", f"{ds.shape}", f"({res}, {res}) as the VQ-VAE decodes"
                )
            refs = ds.all()
            pick = rng.choice(len(refs), size=batch, replace=len(refs) < batch)
            omega0 = np.stack([refs.get(int(i)) for i in pick]).astype(np.float32)
        velocity_source = f"snapshots of {data_dir}"
    if omega0 is None:
        keys = jr.split(jr.key(seed + 1), batch)
        omega0 = np.stack([np.asarray(random_vorticity(k, res)) for k in keys]).astype(np.float32)
        velocity_source = "random field with the generator's initial spectrum (energy 0.5)"
    # generate.json keeps the physics under "parameters" and the step it used at the top level
    par = gen.get("parameters", gen)
    # the generator may simulate finer than it saves (--save_resolution): time its real grid
    sim_res = int(par.get("resolution", res))
    cfg = solver.SolverConfig(
        resolution=sim_res,
        re=float(re if re is not None else par.get("re", 1000.0)),
        alpha=float(par.get("alpha", 0.1)),
        beta=float(par.get("beta", 0.0)),
        fkx=int(par.get("fkx", 4)),
        fky=int(par.get("fky", 4)),
    )
    t_save = float(t_save if t_save is not None else par.get("t_save", 0.1))
    if sim_res != res:
        omega0 = np.stack(
            [np.asarray(random_vorticity(k, sim_res)) for k in jr.split(jr.key(seed + 1), batch)]
        )
        velocity_source += f" (random field at the simulation resolution {sim_res})"
    state = solver.to_state(jnp.asarray(omega0, jnp.float32), cfg)
    for k_dt in ("dt_saved_max", "dt"):
        if dt is None and isinstance(gen.get(k_dt), (int, float)):
            dt = float(gen[k_dt])
            velocity_source = f"time step from {data_dir}/generate.json ({k_dt})"
    if dt is None:
        u_max = float(jnp.max(solver.max_velocity(state)))
        dt = solver.stable_dt(u_max, cfg)
    n_sub = max(1, math.ceil(t_save / dt - 1e-9))
    h = t_save / n_sub
    sol_first, sol_t = _median_time(
        lambda: solver.advance_batch(state, h, n_steps=n_sub, cfg=cfg), repeats
    )  # fmt: skip

    token_fps = n_frames / roll_t
    decode_fps = n_frames / dec_t
    decoded_fps = n_frames / (roll_t + dec_t)
    solver_fps = batch / sol_t
    return {
        "device": str(jax.devices()[0].platform),
        "models": source,
        "resolution": res,
        "batch": batch,
        "n_steps": n_steps,
        "repeats": repeats,
        "token_frames_per_s": token_fps,
        "decode_frames_per_s": decode_fps,
        "decoded_frames_per_s": decoded_fps,
        "solver_frames_per_s": solver_fps,
        "speedup_tokens": token_fps / solver_fps,
        "speedup_decoded": decoded_fps / solver_fps,
        "compile_s": {"rollout": roll_first - roll_t, "decode": dec_first - dec_t,
                      "solver": sol_first - sol_t},
        "solver": {"resolution": sim_res, "t_save": t_save, "dt": h, "steps_per_frame": n_sub, "re": cfg.re,
                   "alpha": cfg.alpha, "fkx": cfg.fkx, "fky": cfg.fky,
                   "velocity_from": velocity_source},
        "model_config": model_info,
    }  # fmt: skip
