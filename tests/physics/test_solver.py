"""Solver accuracy against exact solutions and invariants.

Float32 is the production precision; tests that measure a truncation error that shrinks with dt
run in float64 (``jax.enable_x64`` locally) so that it is not hidden under float32 roundoff.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vqturb.errors import InputError
from vqturb.physics import solver, spectral, stats
from vqturb.physics.solver import SolverConfig

UNFORCED = dict(fkx=0, fky=0)


def _tg(n, dtype=None):
    y, x = spectral.grid(n)
    w = 2 * jnp.cos(x) * jnp.cos(y)
    return w if dtype is None else w.astype(dtype)


def _invariants(w):
    w = jnp.asarray(w)
    return float(stats.energy_spectrum(w).sum()), float(stats.enstrophy(w))


def test_taylor_green_decays_exactly():
    """ω = 2 cos x cos y is a steady Euler flow (ψ = ω/2, so u·∇ω = 0): with viscosity and drag
    it decays as exp(−(2ν + α) t). The linear terms are integrated exactly, so the only error is
    roundoff: float32 bound 1e-5 relative after 40 steps (eps 6e-8 × steps × a few FFT ops)."""
    alpha = 0.3
    cfg = SolverConfig(resolution=32, re=50.0, alpha=alpha, **UNFORCED)
    w0 = _tg(32)
    t = 2.0
    w = solver.evolve(w0, cfg, t, dt=0.05)
    exact = w0 * math.exp(-(2 * cfg.nu + alpha) * t)
    err = float(jnp.max(jnp.abs(w - exact)) / jnp.max(jnp.abs(exact)))
    assert err < 1e-5
    # and the advective tendency of the Taylor–Green vortex vanishes
    w_hat = solver.to_state(w0, cfg)
    rhs = solver.tendency(w_hat, cfg) - solver.linear_operator(cfg) * w_hat
    assert float(jnp.max(jnp.abs(rhs))) < 1e-6 * float(jnp.max(jnp.abs(w_hat)))


def test_taylor_green_float64_error_bound():
    """Same in float64 (local x64): error below 1e-12 relative, independent of dt."""
    with jax.enable_x64(True):
        cfg = SolverConfig(resolution=32, re=100.0, alpha=0.0, **UNFORCED)
        w0 = _tg(32, jnp.float64)
        for dt in (0.5, 0.1):
            w = solver.evolve(w0, cfg, 1.0, dt=dt)
            assert w.dtype == jnp.float64
            err = float(jnp.max(jnp.abs(w - w0 * math.exp(-2 * cfg.nu))))
            assert err < 1e-12 * 2


@pytest.mark.parametrize("kx,ky", [(3, 0), (2, -5), (1, 7)])
def test_single_mode_viscous_decay(kx, ky):
    """Viscosity alone: one Fourier mode (no self-advection) decays as exp(−ν|k|² t)."""
    cfg = SolverConfig(resolution=32, re=40.0, alpha=0.0, **UNFORCED)
    y, x = spectral.grid(32)
    w0 = jnp.cos(kx * x + ky * y + 0.3)
    t = 0.5
    w = solver.evolve(w0, cfg, t, dt=0.1)
    np.testing.assert_allclose(w, w0 * math.exp(-cfg.nu * (kx**2 + ky**2) * t), atol=2e-6)


def test_rossby_wave_travels_westward():
    """β term: a single mode ω = cos(k·x) becomes cos(k·x + β kx t / |k|²)."""
    beta = 2.0
    cfg = SolverConfig(resolution=32, re=math.inf, alpha=0.0, beta=beta, **UNFORCED)
    y, x = spectral.grid(32)
    kx, ky = 2, 1
    w0 = jnp.cos(kx * x + ky * y)
    t = 0.7
    w = solver.evolve(w0, cfg, t, dt=0.1)
    np.testing.assert_allclose(w, jnp.cos(kx * x + ky * y + beta * kx * t / 5), atol=2e-6)


def test_pure_drag_decays_as_exp_minus_alpha_t(rng):
    """Drag alone on a turbulent (nonlinear) field: advection conserves energy and enstrophy, so
    both decay as exp(−2αt), and the Taylor–Green field itself as exp(−αt)."""
    alpha = 0.5
    cfg = SolverConfig(resolution=32, re=math.inf, alpha=alpha, **UNFORCED)
    w0 = spectral.random_vorticity(jax.random.PRNGKey(1), 32, energy=0.5, k_peak=3.0)
    t = 1.0
    w = solver.evolve(w0, cfg, t, dt=0.01)
    e0, z0 = _invariants(w0)
    e1, z1 = _invariants(w)
    assert e1 == pytest.approx(e0 * math.exp(-2 * alpha * t), rel=1e-4)
    assert z1 == pytest.approx(z0 * math.exp(-2 * alpha * t), rel=1e-4)
    assert not np.allclose(w, w0 * math.exp(-alpha * t), atol=1e-2)  # the flow did evolve
    wt = solver.evolve(_tg(32), cfg, t, dt=0.01)
    np.testing.assert_allclose(wt, _tg(32) * math.exp(-alpha * t), atol=1e-5)


def test_inviscid_invariants_conserved_with_error_shrinking_with_dt():
    """Euler (no forcing, viscosity or drag): the 2/3-dealiased Galerkin system conserves energy
    and enstrophy exactly, so any drift is time-stepping error: small, and at least 8× smaller
    when dt halves (RK4: 16× expected)."""
    with jax.enable_x64(True):
        cfg = SolverConfig(resolution=32, re=math.inf, alpha=0.0, **UNFORCED)
        w0 = spectral.random_vorticity(jax.random.PRNGKey(0), 32, energy=0.5, k_peak=3.0)
        assert w0.dtype == jnp.float64
        e0, z0 = _invariants(w0)
        u0 = float(solver.max_velocity(solver.to_state(w0, cfg)))
        dt = 1.2 * cfg.dx / u0  # Courant number 1.2: large, to make the drift measurable
        drifts = []
        for h in (dt, dt / 2, dt / 4):
            w = solver.evolve(w0, cfg, 1.0, dt=h)
            e1, z1 = _invariants(w)
            drifts.append(max(abs(e1 - e0) / e0, abs(z1 - z0) / z0))
        assert drifts[0] < 1e-3
        assert drifts[1] < drifts[0] / 8 and drifts[2] < drifts[1] / 8, drifts
        assert not np.allclose(w, w0, atol=0.1 * float(jnp.abs(w0).max()))  # it did evolve


def test_fourth_order_convergence_of_a_forced_viscous_run():
    """Error against a dt/8 reference falls ~16× when dt halves (IF-RK4 is fourth order)."""
    with jax.enable_x64(True):
        cfg = SolverConfig(resolution=32, re=200.0, alpha=0.1, fkx=2, fky=3)
        w0 = spectral.random_vorticity(jax.random.PRNGKey(2), 32, energy=1.0, k_peak=3.0)
        dt = 1.0 * cfg.dx / float(solver.max_velocity(solver.to_state(w0, cfg)))
        ref = solver.evolve(w0, cfg, 1.0, dt=dt / 16)
        errs = [
            float(jnp.linalg.norm(solver.evolve(w0, cfg, 1.0, dt=h) - ref)) for h in (dt, dt / 2)
        ]
        assert errs[0] / errs[1] > 10, errs


@pytest.mark.parametrize("fkx,fky", [(4, 4), (0, 2)])
def test_laminar_kolmogorov_flow_from_rest(fkx, fky):
    """Forcing convention: from rest, each forced mode solves ω_t = −λω + k cos(k·) with
    λ = νk² + α (all forced modes share |k| or there is one, so advection vanishes):
    ω(t) = k cos(k·)(1 − e^{−λt})/λ. Checks the sign and amplitude of F."""
    cfg = SolverConfig(resolution=32, re=100.0, alpha=0.1, fkx=fkx, fky=fky)
    y, x = spectral.grid(32)
    np.testing.assert_allclose(
        solver.forcing(cfg), fky * jnp.cos(fky * y) + fkx * jnp.cos(fkx * x), atol=1e-6
    )
    t = 1.5
    w = solver.evolve(jnp.zeros((32, 32)), cfg, t, dt=0.05)

    def mode(k, coord):
        lam = cfg.nu * k**2 + cfg.alpha
        return k * jnp.cos(k * coord) * (1 - math.exp(-lam * t)) / lam

    exact = mode(fky, y) + mode(fkx, x)
    np.testing.assert_allclose(w, exact, atol=1e-5 * float(jnp.abs(exact).max()))


def test_forced_turbulence_spectrum_is_finite_and_decays():
    """A short forced run at a Reynolds number that 32² resolves: finite, energy at the forcing
    scale, a spectrum falling by orders of magnitude towards the dealiasing cutoff (kmax = 10),
    and nothing beyond it. (An under-resolved run shows a flat tail instead.)"""
    cfg = SolverConfig(resolution=32, re=40.0, alpha=0.1)
    w0 = spectral.random_vorticity(jax.random.PRNGKey(0), 32)
    frames = list(solver.simulate(w0[None], cfg, t_spinup=3.0, t_save=1.5, n_save=1, dt=0.025))
    w = frames[-1].omega[0]
    assert np.all(np.isfinite(w))
    e = np.asarray(stats.energy_spectrum(w), np.float64)
    assert np.all(np.isfinite(e)) and e[1:11].min() > 0
    assert 3 <= int(np.argmax(e)) <= 5  # energy sits at the forcing scale k = 4
    assert e[9:11].max() < 3e-3 * e.max()
    assert e[10] < 0.1 * e[6]
    assert np.all(e[15:] < 1e-8 * e.max())  # nothing beyond the dealiasing mask (|k| ≥ 10√2)


def test_vmap_batch_equals_one_at_a_time():
    """One vmap over the batch, cache-sized chunks run one after the other (lax.map with a
    remainder: 3 = 2 + 1), and a trajectory on its own all give the same states."""
    cfg = SolverConfig(resolution=32, re=500.0, alpha=0.1)
    keys = jax.random.split(jax.random.PRNGKey(5), 3)
    state = solver.to_state(jax.vmap(lambda k: spectral.random_vorticity(k, 32))(keys), cfg)
    full = solver.advance_batch(state, 0.02, n_steps=25, cfg=cfg, chunk=8)
    chunked = solver.advance_batch(state, 0.02, n_steps=25, cfg=cfg, chunk=2)
    tol = 1e-5 * float(jnp.abs(full).max())
    np.testing.assert_allclose(chunked, full, rtol=0, atol=tol)
    for i in range(3):
        single = solver.advance_batch(state[i : i + 1], 0.02, n_steps=25, cfg=cfg)
        np.testing.assert_allclose(full[i], single[0], rtol=0, atol=tol)
    assert not np.allclose(full[0], full[1])


def test_simulate_times_indices_and_auto_dt():
    cfg = SolverConfig(resolution=32, re=1000.0, alpha=0.1)
    w0 = jax.vmap(lambda k: spectral.random_vorticity(k, 32))(
        jax.random.split(jax.random.PRNGKey(0), 2)
    )
    frames = list(solver.simulate(w0, cfg, t_spinup=0.15, t_save=0.1, n_save=3))
    assert len(frames) == 4
    saved = [f for f in frames if f.index]
    assert [f.index for f in saved] == [1, 2, 3]
    np.testing.assert_allclose([f.time for f in saved], [0.15, 0.25, 0.35])
    assert frames[0].index == 0 and frames[0].omega is None  # spin-up: 0.05 then 0.1, not saved
    np.testing.assert_allclose([f.time for f in frames[:2]], [0.05, 0.15])
    for f in frames:
        assert f.cfl <= 2 * cfg.cfl and f.n_steps >= 1
    assert all(f.omega.shape == (2, 32, 32) and f.omega.dtype == np.float32 for f in saved)


def test_simulate_given_dt_and_zero_spinup():
    cfg = SolverConfig(resolution=32, re=1000.0, alpha=0.1)
    w0 = spectral.random_vorticity(jax.random.PRNGKey(0), 32)[None]
    frames = list(solver.simulate(w0, cfg, t_spinup=0.0, t_save=0.1, n_save=2, dt=0.03))
    assert [f.index for f in frames] == [1, 2]
    np.testing.assert_allclose(frames[0].omega[0], w0[0], atol=1e-5)  # frame 1 = initial state
    assert frames[1].n_steps == 4 and frames[1].dt == pytest.approx(0.025)


def test_simulate_diverging_dt_raises():
    cfg = SolverConfig(resolution=32, re=math.inf, alpha=0.0, **UNFORCED)
    w0 = 20 * spectral.random_vorticity(jax.random.PRNGKey(0), 32, k_peak=8.0)[None]
    with pytest.raises(solver.SolverDivergedError, match="diverged"):
        for _ in solver.simulate(w0, cfg, t_spinup=0.0, t_save=5.0, n_save=3, dt=2.5):
            pass


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(resolution=33),
        dict(resolution=4),
        dict(re=-1.0),
        dict(re=0.0),
        dict(alpha=-0.1),
        dict(fkx=11, resolution=32),
        dict(fky=-1),
        dict(cfl=2.0),
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(InputError):
        SolverConfig(**kwargs)


def test_agrees_with_jax_cfd_spectral_solver():
    """Independent check of every convention (advection sign, ψ and velocity, forcing, drag,
    viscosity) against jax-cfd's ForcedNavierStokes2D (Kochkov et al. 2021). jax-cfd stores
    [x, y] and forces with u = sin(4y), i.e. F = −4 cos(4y) = 4 cos(4(y + π/4)): its solution
    is ours transposed and shifted by π/4 in y. Over a short time (the flow changes by ~15 %)
    the two agree to 1e-4; they differ slightly in the dealiasing cutoff and the time stepper,
    and those differences grow chaotically over longer times."""
    pytest.importorskip("jax_cfd")
    import jax_cfd.base as cfd
    from jax_cfd.spectral import equations, time_stepping

    n, dt, steps = 64, 0.005, 10
    cfg = SolverConfig(resolution=n, re=1000.0, alpha=0.1, fkx=0, fky=4)
    w0 = spectral.random_vorticity(jax.random.PRNGKey(0), n, energy=2.0, k_peak=3.0)
    ours = solver.evolve(w0, cfg, dt * steps, dt)
    grid = cfd.grids.Grid((n, n), domain=((0, 2 * math.pi), (0, 2 * math.pi)))
    eq = equations.ForcedNavierStokes2D(viscosity=cfg.nu, grid=grid, smooth=True)
    many = jax.jit(cfd.funcutils.repeated(time_stepping.crank_nicolson_rk4(eq, dt), steps))
    theirs = jnp.fft.irfftn(many(jnp.fft.rfftn(jnp.roll(w0, -n // 8, axis=0).T)))
    mapped = jnp.roll(ours, -n // 8, axis=0).T
    change = float(jnp.linalg.norm(ours - w0) / jnp.linalg.norm(w0))
    diff = float(jnp.linalg.norm(theirs - mapped) / jnp.linalg.norm(mapped))
    assert change > 0.05
    assert diff < 1e-4, diff


@pytest.mark.slow
def test_forced_turbulence_is_statistically_steady_with_auto_dt():
    """Default physics (Re 1000, k = 4 both ways, α = 0.1) at 64²: after the spin-up the energy
    stays within ±30 % of its mean, the automatic step keeps the Courant number below 2C, and
    the energy sits at large scales (inverse cascade, arrested by drag)."""
    cfg = SolverConfig(resolution=64)
    w0 = jax.vmap(lambda k: spectral.random_vorticity(k, 64))(
        jax.random.split(jax.random.PRNGKey(0), 2)
    )
    frames = [f for f in solver.simulate(w0, cfg, t_spinup=12.0, t_save=1.0, n_save=8) if f.index]
    energy = np.array([np.asarray(stats.energy_spectrum(f.omega)).sum(-1).mean() for f in frames])
    assert np.all(np.abs(energy / energy.mean() - 1) < 0.3), energy
    assert 0.5 < energy.mean() < 5.0
    assert max(f.cfl for f in frames) <= 2 * cfg.cfl
    e = np.asarray(stats.energy_spectrum(frames[-1].omega)).mean(0)
    assert int(np.argmax(e)) <= 4
