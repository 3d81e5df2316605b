import json

import numpy as np
import pytest

from vqturb.errors import InputError
from vqturb.evaluation import bench_rollout as B


def test_random_rows_stay_in_each_scale_range(rng):
    layout = {"scales": (1, 2, 4), "scale_offsets": (0, 1, 9), "scale_vocab_sizes": (1, 8, 16)}
    rows = B._random_rows(layout, 50, rng)
    assert rows.shape == (50, 21)
    assert (rows[:, 0] == 0).all()
    assert rows[:, 1:5].min() >= 1 and rows[:, 1:5].max() < 9
    assert rows[:, 5:].min() >= 9 and rows[:, 5:].max() < 25


def test_partial_checkpoints_are_refused():
    with pytest.raises(InputError, match="all three"):
        B.benchmark_rollout(nsp_checkpoint="x.eqx")


@pytest.mark.slow
def test_bench_rollout_command(tmp_path, capsys):
    from vqturb.cli import main

    out = tmp_path / "bench.json"
    rc = main(
        [
            "bench",
            "rollout",
            "--resolution",
            "32",
            "--batch",
            "2",
            "--n_steps",
            "2",
            "--repeats",
            "1",
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads(out.read_text())
    for k in ("token_frames_per_s", "decoded_frames_per_s", "solver_frames_per_s"):
        assert np.isfinite(saved[k]) and saved[k] > 0 and line[k] == saved[k]
    assert saved["resolution"] == 32 and saved["solver"]["steps_per_frame"] >= 1
    assert saved["speedup_tokens"] == pytest.approx(
        saved["token_frames_per_s"] / saved["solver_frames_per_s"]
    )
