"""NSP scorecard on a tokens file of flows the model never saw (every pair of it): teacher-forced
accuracy and loss against the copy-t0 rate and the uniform loss per scale; forecast skill in the
decoder's space (truth: the decoded true tokens of t+s; persistence: the decoded tokens of t0) at
steps 1..5 for single rollouts and the mean of an ensemble (4 members unless given), per sampling
temperature, from up to 32 starting frames (every 8th frame). Used for the README's NSP tables.

Usage::

    .venv/bin/python benchmarks/heldout_nsp.py NSP_CKPT VQ_CKPT HELDOUT_TOKENS LABEL [T1,T2,...] [MEMBERS]
"""

import json
import sys

import jax.random as jr
import numpy as np

from vqturb import checkpoint as ck
from vqturb.data.tokens_file import TokensFile
from vqturb.metrics import relative_l2
from vqturb.models.nsp_sampling import rollout
from vqturb.tokenizer import VQVAETokenizer
from vqturb.training.nsp_task import evaluate

nsp_ckpt, vq_ckpt, tok_path, label = sys.argv[1:5]
temps = [float(t) for t in (sys.argv[5] if len(sys.argv) > 5 else "1.0").split(",")]
model, _ = ck.load_model(nsp_ckpt, kind="nsp")
tf = TokensFile.read(tok_path)
pairs = tf.pairs(1)
m = evaluate(model, tf, pairs[: (len(pairs) // 16) * 16], 16)
cfg = model.config
out = {"label": label, "n_pairs": len(pairs)}
for k in cfg.trainable_scales:
    out[f"acc_s{k}"] = round(m[f"acc_s{k}"], 4)
    out[f"copy_s{k}"] = round(m[f"copy_acc_s{k}"], 4)
    out[f"loss_s{k}"] = round(m[f"loss_s{k}"], 3)
    out[f"unif_s{k}"] = round(m[f"uniform_loss_s{k}"], 3)
print(json.dumps(out), flush=True)

tok = VQVAETokenizer(vq_ckpt, batch_size=64)
tok.use_vocabulary_of(tok_path)
K = 5
E = int(sys.argv[6]) if len(sys.argv) > 6 else 4  # ensemble members
row = tf.row_of()
# starting frames: every 8th frame with K successors in its trajectory
starts = []
for (tr, ti), r in sorted(row.items()):
    if ti % 8 == 0 and all((tr, ti + s) in row for s in range(1, K + 1)):
        starts.append([r] + [row[(tr, ti + s)] for s in range(1, K + 1)])
starts = np.asarray(starts)[:32]
t0 = tf.indices[starts[:, 0]]
truth = tok.decode_indices(tf.indices[starts[:, 1:]].reshape(-1, tf.indices.shape[1])).reshape(
    len(starts), K, 64, 64
)
pers = tok.decode_indices(t0)
for temp in temps:
    gens = []
    for e in range(E):
        g = np.asarray(
            rollout(model, np.repeat(t0, 1, 0), K, key=jr.key(100 + e), temperature=temp)
        )
        gens.append(tok.decode_indices(g.reshape(-1, g.shape[-1])).reshape(len(starts), K, 64, 64))
    gens = np.stack(gens)  # E N K H W
    single = [
        float(np.mean([relative_l2(gens[e][:, s], truth[:, s]) for e in range(E)]))
        for s in range(K)
    ]
    ens = [float(np.mean(relative_l2(gens.mean(0)[:, s], truth[:, s]))) for s in range(K)]
    per = [float(np.mean(relative_l2(pers, truth[:, s]))) for s in range(K)]
    print(
        json.dumps(
            {
                "label": label,
                "temperature": temp,
                "n_starts": len(starts),
                "members": E,
                "single": [round(v, 3) for v in single],
                "ensemble": [round(v, 3) for v in ens],
                "persistence": [round(v, 3) for v in per],
            }
        ),
        flush=True,
    )
