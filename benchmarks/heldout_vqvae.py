"""Held-out score of one VQ-VAE checkpoint: every vqturb point of ``vqturb bench rd`` (the
progressive curve, entropy-coded bytes per field), without the baselines, on a dataset the model
never saw. The first half of its trajectories fits the entropy coder's count tables, the second
half is scored. Used for the lever table of the README ("Training the VQ-VAE").

Usage::

    .venv/bin/python benchmarks/heldout_vqvae.py CKPT HELDOUT_DIR [LABEL]   # one JSON line per point
"""

import json
import sys

import numpy as np

from vqturb.codec.bench import _load, vqturb_points
from vqturb.codec.rd import field_metrics
from vqturb.data import open_dataset
from vqturb.data.store import Subset, _refs_of
from vqturb.tokenizer import VQVAETokenizer

ckpt, data = sys.argv[1], sys.argv[2]
label = sys.argv[3] if len(sys.argv) > 3 else ckpt
tok = VQVAETokenizer(ckpt, batch_size=16)
ds = open_dataset(data)

refs = _refs_of(ds, range(ds.n_trajectories))
half = ds.n_trajectories // 2
tr = Subset(ds, refs[refs[:, 0] < half], name="tables")
te = Subset(ds, refs[refs[:, 0] >= half], name="test")
x = _load(te, np.arange(len(te)))
vr = float(x.max() - x.min())
pts, thr, sizes = vqturb_points(
    tok, tr, te, x, trajectory_names=[t.name for t in ds.trajectories], progress=False
)
for p in pts:
    m = field_metrics(p.recon, x, vr)
    print(
        json.dumps(
            {
                "label": label,
                "method": p.method,
                "B_per_field": round(p.bytes_per_field, 2),
                "n_test": len(te),
                **{k: round(float(v), 4) for k, v in m.items()},
                **{k: v for k, v in p.params.items() if k in ("scales_decoded", "tokens")},
            }
        )
    )
