"""``generate_dataset``: forced 2D turbulence trajectories written as a dataset (``vqturb generate``).

Trajectory ``i`` starts from :func:`vqturb.physics.spectral.random_vorticity` with the key
``fold_in(PRNGKey(seed), i)`` (so it does not depend on ``n_traj``), is integrated by
:func:`vqturb.physics.solver.simulate` (all trajectories batched with ``vmap``), spun up for
``t_spinup`` without saving, then saved every ``t_save`` for ``n_save`` frames at times
``t_spinup + (k − 1) t_save``. Frames are optionally resampled to ``save_resolution`` by spectral
truncation and written as they are produced (memory does not grow with ``n_save``).

Layout of ``out``:

- ``mat``: ``traj_000/1.mat, 2.mat, …`` (``Omega`` float64, ``time``), one folder per trajectory.
- ``h5``: ``data.h5`` in The Well's layout (``t0_fields/vorticity`` ``[n_traj, n_save, N, N]``
  float32, ``dimensions/time``).
- ``generate.json``: every parameter, the time step actually used, Courant numbers and the wall
  time. Written last, so its presence marks a complete dataset.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from vqturb import __version__
from vqturb.errors import InputError
from vqturb.physics.solver import SolverConfig
from vqturb.utils.fileio import atomic_write_json, staged_output
from vqturb.utils.progress import Progress

__all__ = ["FORMATS", "generate_dataset", "spectral_tail_ratio"]

FORMATS = ("mat", "h5")
_OURS = re.compile(r"^(traj_\d+|data\.h5|generate\.json)$")


def _check(ok: bool, what: str, found, expected: str) -> None:
    if not ok:
        raise InputError(None, what, repr(found), expected)


def _is_int(x) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _finite(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _prepare_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(out, "--out", "is a file", "a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(
                out, "--out", "folder is not empty", "an empty or new folder, or --overwrite"
            )
        # Remove only what a previous `generate` wrote, so stale trajectories cannot mix with new
        # ones; anything else in the folder is left alone.
        for entry in out.iterdir():
            if _OURS.match(entry.name):
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
    out.mkdir(parents=True, exist_ok=True)


def spectral_tail_ratio(omega: np.ndarray) -> float:
    """Largest shell energy in the last fifth of the resolved band (0.8 kmax ≤ k ≤ kmax, kmax ≈
    N/3 after dealiasing) over the peak shell energy, for ``[..., N, N]`` fields (batch mean).

    A resolution check: about 2e-7 at 256², 1e-5 at 128², 1e-3 at 64² for Re 1000 with the
    default forcing; a flat tail above ~1e-3 means energy piles up at the cutoff.
    """
    from vqturb.physics import stats

    n = omega.shape[-1]
    e = np.asarray(stats.energy_spectrum(omega.reshape((-1, n, n)))).mean(axis=0)
    kmax = math.ceil(n / 3) - 1
    return float(e[int(0.8 * kmax) : kmax + 1].max() / max(e.max(), 1e-300))


def generate_dataset(
    out: str | os.PathLike,
    cfg: SolverConfig,
    *,
    n_traj: int = 4,
    t_spinup: float = 30.0,
    t_save: float = 0.1,
    n_save: int = 200,
    dt: float | None = None,
    save_resolution: int | None = None,
    seed: int = 0,
    fmt: str = "mat",
    overwrite: bool = False,
    ic_energy: float = 0.5,
    ic_k_peak: float = 4.0,
    progress: bool = True,
) -> dict:
    """Simulate ``n_traj`` forced-turbulence trajectories and write them to ``out``.

    Args:
        out: output folder (created; must be empty or new unless ``overwrite``).
        cfg: physics and resolution (:class:`SolverConfig`).
        n_traj: number of trajectories, integrated together in one batch.
        t_spinup: simulated time before the first saved frame (not saved).
        t_save: simulated time between saved frames.
        n_save: number of saved frames per trajectory.
        dt: time step; ``None`` chooses it from the CFL and viscous limits (see
            :mod:`vqturb.physics.solver`). A given ``dt`` is an upper bound: each save interval
            uses ``ceil(t_save / dt)`` equal steps.
        save_resolution: side of the saved fields (spectral truncation); ``None``: the solver's.
        seed: random seed of the initial conditions.
        fmt: ``"mat"`` or ``"h5"``.
        overwrite: replace a previous dataset in ``out`` (only files ``generate`` writes).
        ic_energy, ic_k_peak: kinetic energy and peak wavenumber of the initial spectrum.
        progress: show a progress bar (simulated time and ETA) on stderr.

    Returns:
        The metadata written to ``out/generate.json``.
    """
    import jax

    from vqturb.data.writers import WellH5Writer, write_mat_snapshot
    from vqturb.physics import solver, spectral

    out = Path(out)
    n = cfg.resolution
    _check(_is_int(n_traj) and n_traj >= 1, "--n_traj", n_traj, "an integer >= 1")
    _check(_finite(t_spinup) and t_spinup >= 0, "--t_spinup", t_spinup, "a finite number >= 0")
    _check(_finite(t_save) and t_save > 0, "--t_save", t_save, "a finite number > 0")
    _check(_is_int(n_save) and n_save >= 1, "--n_save", n_save, "an integer >= 1")
    _check(dt is None or (_finite(dt) and dt > 0), "--dt", dt, "'auto' or a number > 0")
    m = n if save_resolution is None else save_resolution
    _check(_is_int(m) and 2 <= m <= n, "--save_resolution", m, f"'same' or an integer in [2, {n}]")
    _check(_is_int(seed) and 0 <= seed < 2**32, "--seed", seed, "an integer in [0, 2^32)")
    _check(fmt in FORMATS, "--format", fmt, " or ".join(FORMATS))
    _check(_finite(ic_energy) and ic_energy > 0, "ic_energy", ic_energy, "a number > 0")
    _prepare_output(out, overwrite)
    final_out = out

    t_wall = time.perf_counter()
    root = jax.random.PRNGKey(seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(np.arange(n_traj))
    omega0 = jax.vmap(
        lambda k: spectral.random_vorticity(k, n, energy=ic_energy, k_peak=ic_k_peak)
    )(keys)
    times = np.array([t_spinup + k * t_save for k in range(n_save)], dtype=np.float64)
    t_end = float(times[-1])
    params = {
        "n_traj": n_traj,
        "resolution": n,
        "re": cfg.re,
        "nu": cfg.nu,
        "fkx": cfg.fkx,
        "fky": cfg.fky,
        "alpha": cfg.alpha,
        "beta": cfg.beta,
        "cfl": cfg.cfl,
        "dt_requested": "auto" if dt is None else dt,
        "t_spinup": t_spinup,
        "t_save": t_save,
        "n_save": n_save,
        "save_resolution": m,
        "seed": seed,
        "format": fmt,
        "ic_energy": ic_energy,
        "ic_k_peak": ic_k_peak,
    }

    saved_dts: list[float] = []
    max_cfl = 0.0
    n_steps_total = 0
    last_dt = 0.0
    # everything is written into a staging folder, published whole when every frame is written
    with staged_output(final_out, "--out", "a writable folder with room for the dataset") as out:
        writer = (
            WellH5Writer(
                out / "data.h5", n_traj=n_traj, times=times, shape=(m, m), parameters=params
            )
            if fmt == "h5"
            else contextlib.nullcontext()
        )
        with writer as h5:
            with Progress(total=t_end, desc="generate", unit="t", disable=not progress) as bar:
                sim = solver.simulate(
                    omega0, cfg, t_spinup=t_spinup, t_save=t_save, n_save=n_save, dt=dt
                )
                for frame in sim:
                    n_steps_total += frame.n_steps
                    last_dt = frame.dt or last_dt
                    max_cfl = max(max_cfl, frame.cfl)
                    if frame.index:
                        if frame.index > 1:
                            saved_dts.append(frame.dt)
                        fields = frame.omega
                        last_fields = fields
                        if m != n:
                            fields = spectral.resample_spectral(fields.astype(np.float64), m)
                        t_k = float(times[frame.index - 1])
                        if fmt == "mat":
                            for i in range(n_traj):
                                write_mat_snapshot(
                                    out / f"traj_{i:03d}" / f"{frame.index}.mat", fields[i], t_k
                                )
                        else:
                            h5.write(frame.index - 1, fields)
                    bar.set(
                        frame.time,
                        t=f"{frame.time:.3f}",
                        dt=f"{frame.dt:.2e}",
                        cfl=f"{frame.cfl:.2f}",
                    )

    wall = time.perf_counter() - t_wall
    tail = spectral_tail_ratio(last_fields)
    if max_cfl > solver.CFL_STABILITY_LIMIT:
        print(
            f"generate: note: the Courant number reached {max_cfl:.2f}, above RK4's stability "
            f"limit {solver.CFL_STABILITY_LIMIT:.2f}: the fields may be inaccurate (use a "
            "smaller --dt or --dt auto)",
            file=sys.stderr,
        )
    if tail > 1e-3:
        print(
            f"generate: note: the energy spectrum at the dealiasing cutoff is {tail:.1e} of its "
            "peak (under-resolved: raise --resolution or lower --re; --save_resolution can "
            "keep the saved fields small)",
            file=sys.stderr,
        )
    meta = {
        "vqturb_version": __version__,
        "command": " ".join(sys.argv) if sys.argv and sys.argv[0].endswith("vqturb") else None,
        "parameters": params,
        "dt": last_dt,  # the step of the last interval (the step only shrinks during a run)
        "dt_saved_min": min(saved_dts) if saved_dts else None,
        "dt_saved_max": max(saved_dts) if saved_dts else None,
        "max_cfl": max_cfl,
        # resolution check on the last frame: < 1e-4 well resolved, > 1e-3 under-resolved
        "spectral_tail_ratio": tail,
        "n_steps": n_steps_total,
        "wall_time_s": round(wall, 3),
        "steps_per_s": round(n_steps_total / wall, 2) if wall > 0 else None,
        "times": [float(t) for t in times],
        "layout": (
            "traj_XXX/<k>.mat with Omega (float64, rows = y) and time, k = 1..n_save"
            if fmt == "mat"
            else "data.h5: t0_fields/vorticity [n_traj, n_save, N, N] float32, dimensions/time"
        ),
        "equation": (
            "dω/dt + u·∇ω = ν∇²ω − αω + F + β∂ψ/∂x, ∇²ψ = −ω, u = ∂ψ/∂y, v = −∂ψ/∂x, "
            "F = fky·cos(fky·y) + fkx·cos(fkx·x), on [0, 2π)²"
        ),
    }
    atomic_write_json(final_out / "generate.json", meta)  # last: the dataset is complete
    return meta
