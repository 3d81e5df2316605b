"""NSP benchmarks: training throughput, sampling with/without the KV cache, SPEC vs all-scales mode.

Usage::

    .venv/bin/python benchmarks/bench_nsp.py [--out out_bench_nsp] [--quick]
        [--parts train,sample,modes] [--trunks spec,cpu] [--batch_size 16] [--steps 3]
        [--mode_steps 400]

Parts:

* ``train``  -- training steps/s and tokens/s (sequence positions processed per second) of the whole
  jitted step (forward, backward, Lion update) at the SPEC default trunk (6 layers, 8 heads, 256
  wide) and the cpu preset, on the SPEC's scales 1,2,4,8,16 (T = 341 tokens per frame, sequence
  2 x 341 = 682 in SPEC mode; 341 + 85 + 340 = 766 in all-scales mode, the 1x1 scale being deterministic). Random tokens: speed does not depend on them.
* ``sample`` -- t0 -> t1 frames/s of ``generate`` with and without the key/value cache.
* ``modes``  -- loss against wall-clock time for SPEC mode (one drawn scale per step) and
  ``--all_scales`` (every scale per step) on the same synthetic tokens (a learnable deterministic
  rule, ``tests/synthetic_tokens.py``), cpu-preset trunk; validation loss (all scales) over time.

Writes ``<out>/bench_nsp.json`` (all figures), ``<out>/bench_nsp.md`` (tables) and
``<out>/loss_vs_wallclock.png``; prints the tables on stderr and one JSON line (the headline
figures) on stdout, like the other benchmarks. Compilation is excluded from every rate.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.random as jr
import numpy as np

from vqturb.data.tokens_file import TokensFile
from vqturb.models.nsp import build_nsp, count_parameters, trainable_spec
from vqturb.models.nsp_config import PRESETS, NSPConfig
from vqturb.models.nsp_sampling import generate
from vqturb.training.loop import RunConfig, cached_optimizer, train_step
from vqturb.training.nsp_task import NSPObjective, NSPTrainConfig, train_nsp
from vqturb.training.optim import OptimConfig
from vqturb.utils.fileio import atomic_write_json, atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic_tokens import write_synthetic_tokens  # noqa: E402 (the tests' generator)

SCALES = (1, 2, 4, 8, 16)
# a plausible per-scale vocabulary of a fitted VAR tokenizer: the 1x1 scale deterministic
VOCABS = (1, 16, 64, 256, 512)


def spec_layout(**trunk) -> NSPConfig:
    offsets = tuple(int(v) for v in np.concatenate([[0], np.cumsum(VOCABS)[:-1]]))
    return NSPConfig(SCALES, offsets, VOCABS, codebook_dim=64, **trunk)


def random_rows(cfg: NSPConfig, b: int, rng) -> np.ndarray:
    return np.concatenate(
        [o + rng.integers(0, v, (b, s * s)) for s, o, v in zip(cfg.scales, cfg.scale_offsets, cfg.scale_vocab_sizes, strict=True)],
        axis=1,
    ).astype(np.int32)  # fmt: skip


def seq_len(cfg: NSPConfig, all_scales: bool) -> int:
    if not all_scales:
        return 2 * cfg.tokens_per_frame
    return (
        cfg.tokens_per_frame
        + sum(cfg.scale_lengths[j] for j in cfg.content_scales)
        + sum(cfg.scale_lengths[k] for k in cfg.trainable_scales)
    )


def bench_train(cfg: NSPConfig, batch: int, steps: int, all_scales: bool, rng) -> dict:
    model = build_nsp(
        cfg,
        rng.standard_normal((cfg.vocab_size, cfg.codebook_dim)).astype(np.float32),
        key=jr.key(0),
    )
    opt = cached_optimizer(OptimConfig(optimizer="lion", lr=1e-4), steps + 1)
    opt_state = opt.init(eqx.filter(model, trainable_spec(model)))
    objective = NSPObjective(all_scales=all_scales)
    rows = random_rows(cfg, batch, rng), random_rows(cfg, batch, rng)

    def pair():  # fresh buffers per step: the step donates its inputs
        return tuple(jax.numpy.asarray(r) for r in rows)

    tc = time.perf_counter()
    model, opt_state, m = train_step(objective, model, opt_state, pair(), jr.key(0), opt)
    jax.block_until_ready(m["loss"])
    compile_s = time.perf_counter() - tc
    ts = time.perf_counter()
    for i in range(steps):
        model, opt_state, m = train_step(objective, model, opt_state, pair(), jr.key(i + 1), opt)
    jax.block_until_ready(m["loss"])
    dt = (time.perf_counter() - ts) / steps
    return {
        "n_parameters": count_parameters(model),
        "batch": batch,
        "seq_len": seq_len(cfg, all_scales),
        "all_scales": all_scales,
        "first_step_s": compile_s,
        "step_s": dt,
        "steps_per_s": 1 / dt,
        "pairs_per_s": batch / dt,
        "tokens_per_s": batch * seq_len(cfg, all_scales) / dt,
    }


def bench_sample(cfg: NSPConfig, batch: int, reps: int, rng) -> dict:
    model = build_nsp(
        cfg,
        rng.standard_normal((cfg.vocab_size, cfg.codebook_dim)).astype(np.float32),
        key=jr.key(0),
    )
    t0 = random_rows(cfg, batch, rng)
    out = {"batch": batch}
    for use_cache in (True, False):
        tc = time.perf_counter()
        jax.block_until_ready(generate(model, t0, key=jr.key(0), use_cache=use_cache))
        compile_s = time.perf_counter() - tc
        ts = time.perf_counter()
        for i in range(reps):
            g = generate(model, t0, key=jr.key(i + 1), use_cache=use_cache)
        jax.block_until_ready(g)
        dt = (time.perf_counter() - ts) / reps
        name = "cached" if use_cache else "uncached"
        out[name] = {"first_call_s": compile_s, "call_s": dt, "frames_per_s": batch / dt}
    out["cache_speedup"] = out["cached"]["frames_per_s"] / out["uncached"]["frames_per_s"]
    return out


def bench_modes(out_dir: Path, steps: int, val_every: int) -> dict:
    tokens = write_synthetic_tokens(
        out_dir / "synthetic_tokens.npz", scales=(1, 2, 4, 8), scale_vocab_sizes=(1, 4, 8, 16),
        n_traj=8, n_steps=32, codebook_dim=16,
    )  # fmt: skip
    tok = TokensFile.read(tokens)
    mc = NSPConfig.from_tokens(tok.fields, preset="cpu")
    res = {}
    for all_scales in (False, True):
        name = "all_scales" if all_scales else "spec"
        run = RunConfig(
            checkpoint_dir=str(out_dir / f"run_{name}"), batch_size=16, max_steps=steps, log_every=10,
            val_every=val_every, save_every=10**9, progress=False,
        )  # fmt: skip
        tc = NSPTrainConfig(
            tokens_path=str(tokens), vqvae_checkpoint=None, run=run,
            optim=OptimConfig(optimizer="lion", lr=3e-4), all_scales=all_scales, val_fraction=0.25,
        )  # fmt: skip
        r = train_nsp(mc, tc, tok)
        wall = {h["step"]: h["wall_s"] for h in r.history}
        recs = [
            json.loads(x)
            for x in (out_dir / f"run_{name}" / "metrics.jsonl").read_text().splitlines()
        ]
        val = [
            {
                "step": x["step"],
                "wall_s": wall[x["step"]],
                "val_loss": x["loss"],
                "val_acc": x["acc"],
            }
            for x in recs
            if x["kind"] == "val"
        ]
        res[name] = {
            "train": [
                {"step": h["step"], "wall_s": h["wall_s"], "loss": h["loss"]} for h in r.history
            ],
            "val": val,
            "steady_steps_per_s": float(np.median([h["steps_per_s"] for h in r.history[1:]])),
        }
    return res


def plot_modes(modes: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for name, r in modes.items():
        ax[0].plot(
            [v["wall_s"] for v in r["val"]], [v["val_loss"] for v in r["val"]], "o-", label=name
        )
        ax[1].plot(
            [v["step"] for v in r["val"]], [v["val_loss"] for v in r["val"]], "o-", label=name
        )
    ax[0].set_xlabel("wall-clock (s, incl. compilation and validation)")
    ax[1].set_xlabel("step")
    for a in ax:
        a.set_ylabel("validation loss (mean over scales)")
        a.legend()
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="out_bench_nsp")
    p.add_argument("--parts", default="train,sample,modes")
    p.add_argument("--trunks", default="spec,cpu", help="trunk presets timed by train and sample")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--steps", type=int, default=3, help="timed training steps per configuration")
    p.add_argument("--sample_batch", type=int, default=8)
    p.add_argument("--mode_steps", type=int, default=400)
    p.add_argument("--quick", action="store_true", help="tiny settings (a smoke run)")
    args = p.parse_args()
    if args.quick:
        args.batch_size, args.steps, args.sample_batch, args.mode_steps = 2, 1, 2, 20
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    rng = np.random.default_rng(0)
    result: dict = {
        "command": "benchmarks/bench_nsp.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "device": str(jax.devices()[0]),
        "n_devices": jax.device_count(),
        "platform": platform.processor() or platform.machine(),
    }
    md = [f"# NSP benchmark ({result['device']}, scales {SCALES}, vocab {VOCABS})", ""]
    presets = {name: spec_layout(**PRESETS[name]) for name in args.trunks.split(",")}
    if "train" in parts:
        result["train"] = {}
        md += [
            "| trunk | mode | params | batch | seq | steps/s | tokens/s | first step (s) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, cfg in presets.items():
            for all_scales in (False, True):
                r = bench_train(cfg, args.batch_size, args.steps, all_scales, rng)
                mode = "all_scales" if all_scales else "spec"
                result["train"][f"{name}/{mode}"] = r
                md.append(
                    f"| {name} | {mode} | {r['n_parameters']:,} | {r['batch']} | {r['seq_len']} | {r['steps_per_s']:.3g} "
                    f"| {r['tokens_per_s']:.4g} | {r['first_step_s']:.1f} |"
                )
                print(md[-1], file=sys.stderr, flush=True)
        md.append("")
    if "sample" in parts:
        result["sample"] = {}
        md += [
            "| trunk | batch | frames/s cached | frames/s uncached | speed-up |",
            "|---|---|---|---|---|",
        ]
        for name, cfg in presets.items():
            r = bench_sample(cfg, args.sample_batch, max(1, args.steps), rng)
            result["sample"][name] = r
            md.append(
                f"| {name} | {r['batch']} | {r['cached']['frames_per_s']:.3g} | {r['uncached']['frames_per_s']:.3g} "
                f"| {r['cache_speedup']:.2f}x |"
            )
            print(md[-1], file=sys.stderr, flush=True)
        md.append("")
    if "modes" in parts:
        modes = bench_modes(out, args.mode_steps, max(10, args.mode_steps // 8))
        result["modes"] = modes
        md += ["| mode | steady steps/s | val loss by step (wall s) |", "|---|---|---|"]
        for name, r in modes.items():
            curve = ", ".join(
                f"{v['val_loss']:.3f}@{v['step']} ({v['wall_s']:.0f}s)" for v in r["val"]
            )
            md.append(f"| {name} | {r['steady_steps_per_s']:.3g} | {curve} |")
            print(md[-1], file=sys.stderr, flush=True)
        try:
            plot_modes(modes, out / "loss_vs_wallclock.png")
        except ImportError:
            pass
    atomic_write_json(out / "bench_nsp.json", result)
    atomic_write_text(out / "bench_nsp.md", "\n".join(md) + "\n")
    print("\n".join(md), file=sys.stderr)
    headline = {"bench": "nsp", "device": result["device"]}
    for k, r in result.get("train", {}).items():
        headline[f"train_tokens_per_s/{k}"] = round(r["tokens_per_s"], 1)
    for k, r in result.get("sample", {}).items():
        headline[f"sample_frames_per_s/{k}/cached"] = round(r["cached"]["frames_per_s"], 2)
        headline[f"sample_frames_per_s/{k}/uncached"] = round(r["uncached"]["frames_per_s"], 2)
    for k, r in result.get("modes", {}).items():
        headline[f"final_val_loss/{k}"] = round(r["val"][-1]["val_loss"], 4) if r["val"] else None
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
