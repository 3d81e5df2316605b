import jax.numpy as jnp
import numpy as np

from vqturb.training.metrics import MetricLogger
from vqturb.utils.records import read_metrics


def test_metric_logger_jsonl(tmp_path):
    with MetricLogger(tmp_path) as log:
        log.log(1, {"loss": jnp.asarray(0.5), "ppl": np.array([1.0, 2.0]), "bad": float("nan")})
    with MetricLogger(tmp_path, resume=True) as log:
        log.log(2, {"loss": 0.25})
    recs = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in recs] == [1, 2]
    assert recs[0]["loss"] == 0.5 and recs[0]["ppl"] == [1.0, 2.0] and recs[0]["bad"] is None
