"""Pseudo-spectral solver for forced 2D incompressible Navier–Stokes in vorticity form.

Equation (DESIGN.md, "Physics"), on the periodic square [0, 2π)²::

    ∂ω/∂t + u·∇ω = ν ∇²ω − α ω + F(x, y) + β ∂ψ/∂x,    ∇²ψ = −ω,  u = ∂ψ/∂y,  v = −∂ψ/∂x,

with ν = 1/Re, Rayleigh drag α and Kolmogorov forcing ``F = k_y cos(k_y y) + k_x cos(k_x x)``.

Conventions, stated once:

- The advection term ``J(ψ, ω)`` of DESIGN.md is the physical one, ``J(ψ, ω) ≡ u·∇ω =
  ψ_y ω_x − ψ_x ω_y`` for the velocity convention above (vorticity is carried by the flow).
- ``F`` is the curl of the body force ``f = (−sin(k_y y), sin(k_x x))`` (unit amplitude per
  component): ``F = ∂f_v/∂x − ∂f_u/∂y``. jax-cfd's Kolmogorov flow (Kochkov et al. 2021) uses
  ``f_u = +sin(k y)``, i.e. ``F = −k cos(k y)``: the same flow shifted by half a forcing
  wavelength. ``k = 0`` switches a component off (``0 · cos 0 = 0``).
- ``+β ∂ψ/∂x = −β v`` is the β-plane term: Rossby waves ``cos(k·x + β k_x t / |k|²)`` travel
  westward (towards −x).
- Fields are ``[..., y, x]`` (row axis y); the solver state is the ``rfft2`` of ω over the
  last two axes, ``[n, n//2 + 1]`` complex, kept inside the 2/3 dealiasing mask.

Time stepping: the linear terms ``L = −ν|k|² − α + iβ k_x/|k|²`` are diagonal and integrated
exactly with an integrating factor; advection and forcing use the classical fourth-order
Runge–Kutta method on ``e^{−Lt} ω̂`` ("IF-RK4", Lawson 1967, SIAM J. Numer. Anal. 4, 372; see
also Kassam & Trefethen 2005, SIAM J. Sci. Comput. 26, 1214). Exact linear integration means a
Taylor–Green vortex or a single Fourier mode decays exactly at every dt.

Stable time step (``dt=None``): ``dt = min(C Δx / U, Δx² / (4ν))`` with ``Δx = 2π/N``,
``U = max_x (|u| + |v|)`` and Courant number ``C = cfg.cfl`` (0.5 by default). RK4 is stable on
the imaginary axis up to ``|λ dt| ≤ 2√2``; the largest advective eigenvalue after 2/3
dealiasing is about ``(N/3) U``, so the limit is ``C ≈ 1.35``: 0.5 keeps a factor 2.7. The
viscous bound is not needed for stability (viscosity is exact) and is kept, as in jax-cfd's
``stable_time_step``, for accuracy at very low Re. Each save interval is cut into an integer
number of equal steps, so saved frames land exactly on ``t_spinup + k t_save``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Complex, Float

from vqturb.errors import InputError, VqturbError
from vqturb.physics import spectral

__all__ = [
    "Frame",
    "SolverConfig",
    "SolverDivergedError",
    "advance",
    "advance_batch",
    "default_chunk",
    "evolve",
    "forcing",
    "linear_operator",
    "max_velocity",
    "simulate",
    "stable_dt",
    "step",
    "tendency",
    "to_physical",
    "to_state",
]

# RK4 stability limit on the imaginary axis, 2√2, over the dealiased kmax ≈ N/3, in units of Δx/U.
CFL_STABILITY_LIMIT = 2 * math.sqrt(2) * 3 / (2 * math.pi)


class SolverDivergedError(VqturbError):
    """The solution stopped being finite (time step too large for the flow)."""


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """Physical and numerical parameters of the forced Navier–Stokes solver (hashable: a static
    argument of the jitted steppers)."""

    resolution: int = 256  # grid points N per side of [0, 2π)²; even
    re: float = 1000.0  # Reynolds number, ν = 1/re; math.inf gives the inviscid (Euler) limit
    alpha: float = 0.1  # Rayleigh (linear) drag coefficient α ≥ 0, 1/time
    beta: float = 0.0  # β-plane coefficient of the +β ∂ψ/∂x term
    fkx: int = 4  # forcing wavenumber of k_x cos(k_x x); 0 switches that component off
    fky: int = 4  # forcing wavenumber of k_y cos(k_y y); 0 switches that component off
    cfl: float = 0.5  # Courant number C = dt max(|u|+|v|) / Δx targeted by the automatic dt

    def __post_init__(self):
        n = self.resolution
        if isinstance(n, bool) or not isinstance(n, int) or n < 8 or n % 2:
            raise InputError(None, "resolution", repr(n), "an even integer >= 8")
        if not (isinstance(self.re, int | float) and self.re > 0) or math.isnan(self.re):
            raise InputError(None, "re", repr(self.re), "a positive number (inf: inviscid)")
        if not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise InputError(None, "alpha", repr(self.alpha), "a finite number >= 0")
        if not math.isfinite(self.beta):
            raise InputError(None, "beta", repr(self.beta), "a finite number")
        for name in ("fkx", "fky"):
            k = getattr(self, name)
            if isinstance(k, bool) or not isinstance(k, int) or k < 0 or k >= n / 3:
                raise InputError(
                    None, name, repr(k), f"an integer in [0, {n}/3) so the forcing is resolved"
                )
        if not (0 < self.cfl <= CFL_STABILITY_LIMIT):
            raise InputError(None, "cfl", repr(self.cfl), f"in (0, {CFL_STABILITY_LIMIT:.2f}]")

    @property
    def nu(self) -> float:
        """Kinematic viscosity ν = 1/Re."""
        return 0.0 if math.isinf(self.re) else 1.0 / self.re

    @property
    def dx(self) -> float:
        """Grid spacing 2π/N."""
        return 2 * math.pi / self.resolution

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# Operators (built at trace time, in the precision of the state)


class _Operators(NamedTuple):
    lin: Complex[Array, "n m"]  # L = −ν|k|² − α + iβ kx/|k|²
    ky: Float[Array, "n m"]  # derivative wavenumbers (Nyquist → 0)
    kx: Float[Array, "n m"]
    inv_k2: Float[Array, "n m"]  # 1/|k|², 0 at k = 0
    mask: Bool[Array, "n m"]  # 2/3 rule
    forcing_hat: Complex[Array, "n m"]  # rfft2 of F


def _operators(cfg: SolverConfig, dtype) -> _Operators:
    n = cfg.resolution
    ky, kx = spectral.rfft_wavenumbers(n, dtype)
    dky, dkx = spectral.derivative_wavenumbers(n, dtype)
    k2 = ky**2 + kx**2
    inv_k2 = jnp.where(k2 > 0, 1.0 / jnp.where(k2 > 0, k2, 1.0), 0.0)
    lin = (-cfg.nu * k2 - cfg.alpha) + 1j * (cfg.beta * dkx * inv_k2)
    # rfft2 of k cos(k y) is k n²/2 at (±k, 0); of k cos(k x) it is k n²/2 at (0, k).
    amp = n * n / 2
    f_hat = jnp.where((kx == 0) & (jnp.abs(ky) == cfg.fky), cfg.fky * amp, 0.0)
    f_hat = f_hat + jnp.where((ky == 0) & (kx == cfg.fkx), cfg.fkx * amp, 0.0)
    complex_dtype = jnp.result_type(dtype, jnp.complex64)
    return _Operators(
        lin=lin.astype(complex_dtype),
        ky=dky,
        kx=dkx,
        inv_k2=inv_k2,
        mask=spectral.dealias_mask(n),
        forcing_hat=f_hat.astype(complex_dtype),
    )


def _real_dtype(omega_hat: Array):
    return jnp.finfo(omega_hat.dtype).dtype


def linear_operator(cfg: SolverConfig, dtype=None) -> Complex[Array, "n m"]:
    """Diagonal linear operator ``L = −ν|k|² − α + iβ k_x/|k|²`` on the ``rfft2`` grid."""
    return _operators(cfg, jnp.result_type(float) if dtype is None else dtype).lin


def forcing(cfg: SolverConfig) -> Float[Array, "n n"]:
    """Vorticity forcing ``F(x, y) = k_y cos(k_y y) + k_x cos(k_x x)`` on the grid, ``[n, n]``."""
    y, x = spectral.grid(cfg.resolution)
    return cfg.fky * jnp.cos(cfg.fky * y) + cfg.fkx * jnp.cos(cfg.fkx * x)


def to_state(omega: Float[ArrayLike, "*b n n"], cfg: SolverConfig) -> Complex[Array, "*b n m"]:
    """Solver state from a physical vorticity field: ``rfft2``, restricted to the dealiased modes."""
    omega = jnp.asarray(omega, dtype=jnp.result_type(float))
    if omega.shape[-1] != cfg.resolution or omega.shape[-2] != cfg.resolution:
        raise InputError(
            None, "initial vorticity", f"shape {omega.shape}", f"[..., {cfg.resolution}, ...]"
        )
    return jnp.fft.rfft2(omega) * spectral.dealias_mask(cfg.resolution)


def to_physical(omega_hat: Complex[Array, "*b n m"]) -> Float[Array, "*b n n"]:
    """Physical vorticity ``[..., n, n]`` from the solver state."""
    n = omega_hat.shape[-2]
    return jnp.fft.irfft2(omega_hat, s=(n, n))


# ----------------------------------------------------------------------------------------------
# Right-hand side and time stepping (single trajectory; batch with vmap)


def _explicit(omega_hat: Complex[Array, "n m"], ops: _Operators) -> Complex[Array, "n m"]:
    """Dealiased ``−(u·∇ω)^ + F̂``: four inverse and one forward FFT."""
    n = omega_hat.shape[-2]
    psi_hat = omega_hat * ops.inv_k2
    irfft = partial(jnp.fft.irfft2, s=(n, n))
    u = irfft(1j * ops.ky * psi_hat)
    v = irfft(-1j * ops.kx * psi_hat)
    omega_x = irfft(1j * ops.kx * omega_hat)
    omega_y = irfft(1j * ops.ky * omega_hat)
    advection_hat = jnp.fft.rfft2(u * omega_x + v * omega_y)
    return jnp.where(ops.mask, -advection_hat, 0.0) + ops.forcing_hat


def tendency(omega_hat: Complex[Array, "n m"], cfg: SolverConfig) -> Complex[Array, "n m"]:
    """Full right-hand side ``∂ω̂/∂t = L ω̂ − (u·∇ω)^ + F̂`` (dealiased)."""
    ops = _operators(cfg, _real_dtype(omega_hat))
    return ops.lin * omega_hat + _explicit(omega_hat, ops)


def _if_rk4(
    omega_hat: Complex[Array, "n m"],
    dt: float | Float[Array, ""],
    ops: _Operators,
    e_half: Complex[Array, "n m"],
    e_full: Complex[Array, "n m"],
) -> Complex[Array, "n m"]:
    # Classical RK4 applied to v = e^{−Lt} ω̂ and written back in terms of ω̂ (Lawson's method).
    k1 = _explicit(omega_hat, ops)
    k2 = _explicit(e_half * (omega_hat + 0.5 * dt * k1), ops)
    k3 = _explicit(e_half * omega_hat + 0.5 * dt * k2, ops)
    k4 = _explicit(e_full * omega_hat + dt * e_half * k3, ops)
    return e_full * omega_hat + (dt / 6) * (e_full * k1 + 2 * e_half * (k2 + k3) + k4)


def _factors(ops: _Operators, dt) -> tuple[Complex[Array, "n m"], Complex[Array, "n m"]]:
    return jnp.exp(ops.lin * (0.5 * dt)), jnp.exp(ops.lin * dt)


def step(
    omega_hat: Complex[Array, "n m"], dt: float | Float[Array, ""], cfg: SolverConfig
) -> Complex[Array, "n m"]:
    """One IF-RK4 step of size ``dt`` (time units) of one trajectory's state ``[n, n//2+1]``."""
    ops = _operators(cfg, _real_dtype(omega_hat))
    e_half, e_full = _factors(ops, dt)
    return _if_rk4(omega_hat, dt, ops, e_half, e_full)


def advance(
    omega_hat: Complex[Array, "n m"],
    dt: float | Float[Array, ""],
    n_steps: int,
    cfg: SolverConfig,
) -> Complex[Array, "n m"]:
    """``n_steps`` IF-RK4 steps of size ``dt`` with ``lax.scan`` (one trajectory)."""
    ops = _operators(cfg, _real_dtype(omega_hat))
    e_half, e_full = _factors(ops, dt)

    def body(w, _):
        return _if_rk4(w, dt, ops, e_half, e_full), None

    omega_hat, _ = jax.lax.scan(body, omega_hat, None, length=n_steps)
    return omega_hat


def default_chunk(n: int) -> int | None:
    """Trajectories per vmapped chunk in :func:`advance_batch` for an ``n × n`` grid.

    ``None`` (all at once) on accelerators. On CPU at most ``2¹⁷`` grid points per chunk: XLA:CPU's
    batched FFTs and fused elementwise passes slow down once a chunk's arrays outgrow the caches
    (measured on 2 cores, 8 trajectories: at 256² one `vmap` over all 8 ran at ~70 trajectory-steps/s,
    chunks of 2 at ~160-200; at 64² the full `vmap` is fastest; benchmarks/bench_solver.py).
    """
    if jax.default_backend() != "cpu":
        return None
    return max(1, 2**17 // (n * n))


@partial(jax.jit, static_argnames=("n_steps", "cfg", "chunk"))
def advance_batch(
    omega_hat: Complex[Array, "b n m"],
    dt: float | Float[Array, ""],
    *,
    n_steps: int,
    cfg: SolverConfig,
    chunk: int | None = None,
) -> Complex[Array, "b n m"]:
    """:func:`advance` for a batch of trajectories, jitted: one call per save interval.

    Trajectories are batched with ``jax.vmap``, in chunks of ``chunk`` trajectories run one after
    the other (``lax.map(..., batch_size=chunk)``); ``chunk=None`` uses :func:`default_chunk`
    (all trajectories in one ``vmap`` on GPU/TPU). ``dt`` is traced (changing it does not
    recompile); ``n_steps``, ``cfg`` and ``chunk`` are static.
    """

    def one(w):
        return advance(w, dt, n_steps, cfg)

    size = default_chunk(cfg.resolution) if chunk is None else chunk
    if size is None or size >= omega_hat.shape[0]:
        return jax.vmap(one)(omega_hat)
    return jax.lax.map(one, omega_hat, batch_size=size)


def max_velocity(omega_hat: Complex[Array, "*b n m"]) -> Float[Array, "*b"]:
    """``max_x (|u| + |v|)`` per field, the velocity scale of the CFL condition."""
    n = omega_hat.shape[-2]
    u_hat, v_hat = spectral.velocity_hat(omega_hat)
    u = jnp.fft.irfft2(u_hat, s=(n, n))
    v = jnp.fft.irfft2(v_hat, s=(n, n))
    return jnp.max(jnp.abs(u) + jnp.abs(v), axis=(-2, -1))


def stable_dt(u_max: float, cfg: SolverConfig) -> float:
    """``min(C Δx / U, Δx²/(4ν))`` (module docstring); ``inf`` when neither bound applies."""
    bounds = [math.inf]
    if u_max > 0:
        bounds.append(cfg.cfl * cfg.dx / u_max)
    if cfg.nu > 0:
        bounds.append(cfg.dx**2 / (4 * cfg.nu))
    return min(bounds)


@jax.jit
def _diagnose(
    omega_hat: Complex[Array, "b n m"],
) -> tuple[Float[Array, "b n n"], Float[Array, ""], Bool[Array, ""]]:
    omega = to_physical(omega_hat)
    return omega, jnp.max(max_velocity(omega_hat)), jnp.all(jnp.isfinite(omega))


def evolve(
    omega: Float[ArrayLike, "*b n n"],
    cfg: SolverConfig,
    t: float,
    dt: float,
) -> Float[Array, "*b n n"]:
    """Physical vorticity after time ``t``, with ``ceil(t/dt)`` equal steps (≤ ``dt``) from ``omega``."""
    n_steps = max(1, math.ceil(t / dt - 1e-9))
    omega = jnp.asarray(omega, dtype=jnp.result_type(float))
    lead = omega.shape[:-2]
    state = to_state(omega.reshape((-1,) + omega.shape[-2:]), cfg)
    state = advance_batch(state, t / n_steps, n_steps=n_steps, cfg=cfg)
    return to_physical(state).reshape(lead + omega.shape[-2:])


# ----------------------------------------------------------------------------------------------
# Driver: spin-up, then saved frames every t_save, with an adaptive but monotone time step


def _round_up_steps(n: int) -> int:
    """Round a step count up to 1, 2, 3, 4 or ⌈2^(j/4)⌉ (at most 20 % more steps) so that the jitted
    stepper, whose step count is static, recompiles only a few times as the flow spins up."""
    if n <= 4:
        return n
    j = math.ceil(4 * math.log2(n) - 1e-9)
    while math.ceil(2 ** (j / 4)) < n:
        j += 1
    return math.ceil(2 ** (j / 4))


class Frame(NamedTuple):
    """What :func:`simulate` reports at the end of each interval."""

    time: float  # simulated time at the end of the interval
    index: int  # 1-based index of the saved frame; 0 for spin-up intervals (not saved)
    omega: np.ndarray | None  # [b, n, n] float32 physical vorticity for saved frames, else None
    dt: float  # time step used in the interval that ended here (0 for the initial frame)
    n_steps: int  # steps in that interval
    cfl: float  # Courant number dt max(|u|+|v|)/Δx at the end of the interval


def simulate(
    omega0: Float[ArrayLike, "b n n"],
    cfg: SolverConfig,
    *,
    t_spinup: float,
    t_save: float,
    n_save: int,
    dt: float | None = None,
    max_retries: int = 6,
) -> Iterator[Frame]:
    """Integrate a batch of trajectories and yield a :class:`Frame` after every interval.

    Saved frames are at ``t = t_spinup + (k − 1) t_save`` for ``k = 1 … n_save`` (frame 1 is
    the state at the end of the spin-up). The spin-up is cut into ``ceil(t_spinup / t_save)``
    intervals (the first one possibly shorter) so progress can be shown.

    Time step: with ``dt`` given, every interval of length ``T`` uses ``ceil(T/dt)`` equal steps
    (so the step is at most ``dt``). With ``dt=None`` the target step is
    :func:`stable_dt` of the current ``max(|u|+|v|)`` over the batch, never increased once
    decreased (so the jitted stepper recompiles only when it shrinks); an interval whose
    end state is non-finite or has a Courant number above ``2 C`` is recomputed from its start
    with a smaller step. A given ``dt`` that diverges raises :class:`SolverDivergedError`.
    """
    omega0 = jnp.asarray(omega0, dtype=jnp.result_type(float))
    if omega0.ndim != 3:
        raise InputError(None, "initial vorticity", f"shape {omega0.shape}", "[batch, n, n]")
    state = to_state(omega0, cfg)
    dt_target = math.inf if dt is None else float(dt)
    omega, u_max, _ = _diagnose(state)
    u_max = float(u_max)
    m_spin = max(0, math.ceil(t_spinup / t_save - 1e-9))
    intervals = []
    for i in range(m_spin):
        length = t_spinup - (m_spin - 1) * t_save if i == 0 else t_save
        intervals.append((t_spinup - (m_spin - 1 - i) * t_save, 0, length))
    if m_spin == 0:
        yield Frame(float(t_spinup), 1, np.asarray(omega), 0.0, 0, 0.0)
    else:
        intervals[-1] = (t_spinup, 1, intervals[-1][2])
    for k in range(2, n_save + 1):
        intervals.append((t_spinup + (k - 1) * t_save, k, t_save))

    for t_end, index, length in intervals:
        for attempt in range(max_retries + 1):
            if dt is None:
                dt_target = min(dt_target, stable_dt(u_max, cfg))
            n_steps = max(1, math.ceil(length / dt_target - 1e-9))
            if dt is None:
                n_steps = _round_up_steps(n_steps)
            h = length / n_steps
            new_state = advance_batch(state, h, n_steps=n_steps, cfg=cfg)
            omega, new_u, finite = _diagnose(new_state)
            new_u = float(new_u)
            cfl = h * new_u / cfg.dx
            ok = bool(finite) and (dt is not None or cfl <= 2 * cfg.cfl)
            if ok:
                break
            if dt is not None or attempt == max_retries:
                raise SolverDivergedError(
                    f"solution diverged at t = {t_end:g} (step {h:.3g}, Courant number "
                    f"{cfl:.3g}); use a smaller --dt or --dt auto"
                )
            # Recompute the interval with a step that the end state's velocity allows.
            dt_target = (
                h / 2 if not (bool(finite) and new_u > 0) else min(h / 2, stable_dt(new_u, cfg))
            )
        state, u_max = new_state, new_u
        yield Frame(t_end, index, np.asarray(omega) if index else None, h, n_steps, cfl)
