"""Random symmetries of periodic square fields, drawn per sample inside the training step.

A VQ-VAE trained on a few trajectories of a statistically homogeneous flow over-fits them: the
demo's frames 0.1 apart correlate at 0.9, so 400 training fields are a few dozen independent ones.
The symmetries of the flow multiply them at no data cost:

- ``roll``: a circular shift by a uniform random offset on each axis. Exact for periodic fields;
  the convolutions are circular, so only the coarse VAR scales (1², 2², 4²) see the difference.
- ``rot90``: a rotation by a random multiple of 90° (square fields only).
- ``mirror``: a reflection (``x → −x``) with probability ½. Vorticity is a pseudo-scalar: a mirror
  image of a flow has vorticity ``−ω(−x, y)``, so the reflected field is negated about the
  physical zero (``mirror_sign = −1``, the default); use ``+1`` for true scalars (buoyancy,
  pressure).

The forced flow of the demo (forcing ``cos 4x + cos 4y``) is invariant under rotations by 90° and
under shifts by a quarter period combined with a mirror; a shift by any offset moves the forcing
pattern but keeps every statistic a compressor sees. The draws come from the step's key, so a
resumed run sees the same augmented batches (exact resume is kept).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from vqturb.errors import InputError

AUGMENTS = ("roll", "rot90", "mirror")


def parse_augment(text: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """``"roll,rot90,mirror"`` / ``"none"`` / a tuple → a tuple of symmetry names in a fixed order."""
    if text is None:
        return ()
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip() for n in names if n.strip() and n.strip() != "none"]
    for n in names:
        if n not in AUGMENTS:
            raise InputError(
                None, "--augment", repr(n), "none or a comma list of " + ", ".join(AUGMENTS)
            )
    return tuple(a for a in AUGMENTS if a in names)


def _one(x: jax.Array, key: jax.Array, ops: tuple[str, ...], zero: float, sign: float) -> jax.Array:
    k_roll_y, k_roll_x, k_rot, k_mirror = jr.split(key, 4)
    h, w = x.shape
    if "roll" in ops:
        x = jnp.roll(x, (jr.randint(k_roll_y, (), 0, h), jr.randint(k_roll_x, (), 0, w)), (0, 1))
    if "rot90" in ops:
        x = jax.lax.switch(
            jr.randint(k_rot, (), 0, 4), [lambda a, k=k: jnp.rot90(a, k) for k in range(4)], x
        )
    if "mirror" in ops:
        mirrored = zero + sign * (x[:, ::-1] - zero)
        x = jnp.where(jr.bernoulli(k_mirror), mirrored, x)
    return x


def augment_batch(
    batch: jax.Array,
    key: jax.Array,
    ops: tuple[str, ...],
    *,
    zero: float = 0.0,
    mirror_sign: float = -1.0,
) -> jax.Array:
    """Apply an independent random draw of the symmetries ``ops`` to each field of ``[B, H, W]``.

    ``zero``: the value of the physical zero in the batch's (normalised) units, the centre of the
    mirror's negation; ``mirror_sign``: −1 for a pseudo-scalar (vorticity), +1 for a scalar.
    """
    if not ops:
        return batch
    if "rot90" in ops and batch.shape[-1] != batch.shape[-2]:
        raise InputError(
            None, "--augment", "rot90", f"square fields (got {batch.shape[-2]}x{batch.shape[-1]})"
        )
    keys = jr.split(key, batch.shape[0])
    return jax.vmap(lambda a, k: _one(a, k, ops, zero, mirror_sign))(batch, keys)


def symmetry_group(ops: tuple[str, ...]) -> list[tuple[int, bool]]:
    """Every element of the group ``ops`` generates (``rot90`` and/or ``mirror``; ``roll`` has no
    finite enumeration and is refused) as ``(quarter turns, mirrored)``, the identity first."""
    if "roll" in ops:
        raise InputError(None, "--augment", "roll", "rot90 and/or mirror (shifts move the forcing)")
    turns = range(4) if "rot90" in ops else range(1)
    mirrors = (False, True) if "mirror" in ops else (False,)
    return [(k, m) for m in mirrors for k in turns]


def apply_symmetry(fields, element: tuple[int, bool], *, mirror_sign: float = -1.0):
    """One group element (:func:`symmetry_group`) applied to physical fields ``[..., H, W]``
    (NumPy): ``k`` quarter turns, then, if mirrored, ``x → −x`` times ``mirror_sign``."""
    k, mirrored = element
    out = np.rot90(fields, k, axes=(-2, -1))
    if mirrored:
        out = mirror_sign * out[..., ::-1]
    return np.ascontiguousarray(out)
