"""`vqturb inspect`: summary and exit 0 on a valid dataset; one line per bad file and exit 2."""

from __future__ import annotations

import json

import h5py
import numpy as np
import scipy.io

from vqturb.cli import main


def _write_dataset(root, rng, n_traj=2, n_t=4, n=8):
    for i in range(n_traj):
        d = root / f"traj_{i:03d}"
        d.mkdir(parents=True)
        for t in range(n_t):
            scipy.io.savemat(
                d / f"{t + 1}.mat", {"Omega": rng.standard_normal((n, n)), "time": 0.5 * t}
            )
    return root


def test_valid_dataset_exit_0(tmp_path, rng, capsys):
    root = _write_dataset(tmp_path / "ds", rng)
    assert main(["inspect", str(root), "--divisible_by", "4", "--no_progress"]) == 0
    out, err = capsys.readouterr()
    assert "trajectories  2" in out
    assert "snapshots     8 (8 valid)" in out
    assert "8 x 8" in out and "float64" in out
    assert "time          0 .. 1.5" in out
    assert "error" not in err


def test_json_output(tmp_path, rng, capsys):
    root = _write_dataset(tmp_path / "ds", rng)
    assert main(["inspect", str(root), "--json", "--no_progress"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["ok"] and d["n_snapshots"] == 8 and d["shape"] == [8, 8]


def test_bad_files_exit_2_one_line_each(tmp_path, rng, capsys):
    root = _write_dataset(tmp_path / "ds", rng)
    scipy.io.savemat(root / "traj_000" / "2.mat", {"Omega": np.full((8, 8), np.nan)})
    (root / "traj_001" / "3.mat").write_bytes(b"\x00" * 7)
    assert main(["inspect", str(root), "--no_progress"]) == 2
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    bad = [ln for ln in lines if ln.startswith("vqturb inspect: error:")]
    assert len(bad) == 2
    assert "traj_000/2.mat" in bad[0] and "64 NaN" in bad[0] and "'Omega'" in bad[0]
    assert "traj_001/3.mat" in bad[1]
    assert "Traceback" not in err


def test_structural_errors_exit_2_without_traceback(tmp_path, rng, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["inspect", str(tmp_path / "empty"), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "empty folder" in err
    root = _write_dataset(tmp_path / "ds", rng)
    assert main(["inspect", str(root), "--var", "psi", "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert "'psi'" in err and "'Omega'" in err and "Traceback" not in err
    assert main(["inspect", str(root), "--divisible_by", "16", "--no_progress"]) == 2
    assert "not divisible by 16" in capsys.readouterr().err


def test_hdf5_with_h5_key(tmp_path, rng, capsys):
    p = tmp_path / "sim.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("fields/w", data=rng.standard_normal((3, 5, 8, 8)))
        f.create_dataset("time", data=np.arange(5) * 0.25)
    assert main(["inspect", str(p), "--h5_key", "fields/w", "--no_progress"]) == 0
    out = capsys.readouterr().out
    assert "trajectories  3" in out and "snapshots     15 (15 valid)" in out
    assert "time          0 .. 1" in out
    assert main(["inspect", str(p), "--no_progress"]) == 2
    assert "'fields/w'" in capsys.readouterr().err  # the candidates are listed
