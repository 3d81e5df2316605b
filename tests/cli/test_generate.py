import json

import h5py
import numpy as np
import pytest
import scipy.io

from vqturb.cli import main
from vqturb.data.generate import spectral_tail_ratio
from vqturb.data.writers import WellH5Writer, write_mat_trajectory, write_well_h5
from vqturb.physics.spectral import resample_spectral

# One small configuration shared by the runs below, with a fixed dt so the jitted stepper
# compiles once for the whole file.
TINY = ["--resolution", "32", "--n_traj", "2", "--n_save", "3", "--t_spinup", "0.5", "--dt", "0.05"]
TIMES = [0.5, 0.6, 0.7]


@pytest.fixture(scope="module")
def mat_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "mat"
    assert main(["generate", "--out", str(out), *TINY]) == 0
    return out


def _mat_fields(out):
    fields = np.zeros((2, 3, 32, 32))
    for i in range(2):
        for k in range(3):
            d = scipy.io.loadmat(out / f"traj_{i:03d}" / f"{k + 1}.mat")
            assert d["Omega"].dtype == np.float64 and d["Omega"].shape == (32, 32)
            assert float(np.squeeze(d["time"])) == pytest.approx(TIMES[k])
            fields[i, k] = d["Omega"]
    return fields


def test_generate_mat(mat_run):
    out = mat_run
    assert sorted(p.name for p in out.iterdir()) == ["generate.json", "traj_000", "traj_001"]
    for i in range(2):
        assert sorted(p.name for p in (out / f"traj_{i:03d}").iterdir()) == [
            "1.mat",
            "2.mat",
            "3.mat",
        ]
    fields = _mat_fields(out)
    assert np.all(np.isfinite(fields))
    assert np.abs(fields).max() > 1.0  # forced flow, not zeros
    # consecutive frames are correlated but not identical; trajectories differ
    d01 = np.linalg.norm(fields[0, 1] - fields[0, 0]) / np.linalg.norm(fields[0, 0])
    assert 1e-4 < d01 < 0.5
    assert not np.allclose(fields[0], fields[1])
    meta = json.loads((out / "generate.json").read_text())
    p = meta["parameters"]
    assert p["resolution"] == 32 and p["n_traj"] == 2 and p["n_save"] == 3 and p["format"] == "mat"
    assert p["re"] == 1000 and p["alpha"] == 0.1 and p["fkx"] == 4 and p["seed"] == 0
    assert p["dt_requested"] == 0.05 and meta["dt"] == pytest.approx(0.05)
    assert meta["times"] == pytest.approx(TIMES)
    assert meta["wall_time_s"] > 0 and 0 < meta["max_cfl"] < 1.35
    assert 0 < meta["spectral_tail_ratio"] < 1
    assert not list(out.rglob(".*"))  # no temporary files left behind


def test_generate_h5_matches_mat_after_truncation(mat_run, tmp_path):
    out = tmp_path / "h5"
    argv = ["generate", "--out", str(out), *TINY, "--format", "h5", "--save_resolution", "16"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["data.h5", "generate.json"]
    with h5py.File(out / "data.h5", "r") as f:
        v = f["t0_fields/vorticity"]
        assert v.shape == (2, 3, 16, 16) and v.dtype == np.float32
        assert f["dimensions/time"].dtype == np.float64
        np.testing.assert_allclose(f["dimensions/time"][()], TIMES, rtol=1e-12)
        assert f.attrs["n_spatial_dims"] == 2 and f.attrs["n_trajectories"] == 2
        assert f.attrs["grid_type"] == "cartesian"
        assert list(f["t0_fields"].attrs["field_names"]) == ["vorticity"]
        assert f["dimensions/x"].shape == (16,)
        data = v[()]
    # same seed → same trajectories; the saved 16² fields are the spectral truncation of 32²
    expected = resample_spectral(_mat_fields(mat_run), 16)
    np.testing.assert_allclose(data, expected, atol=1e-5 * np.abs(expected).max())


def test_refuses_non_empty_folder_unless_overwrite(mat_run, tmp_path, capsys):
    out = tmp_path / "again"
    (out / "traj_007").mkdir(parents=True)  # stale trajectory from an earlier run
    (out / "notes.txt").write_text("keep me")
    assert main(["generate", "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0] and "--overwrite" in err[0]
    assert main(["generate", "--out", str(out), *TINY, "--overwrite"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["generate.json", "notes.txt", "traj_000", "traj_001"]


@pytest.mark.parametrize(
    "extra, flag",
    [
        (["--resolution", "33"], "--resolution"),
        (["--resolution", "abc"], "--resolution"),
        (["--re", "-5"], "--re"),
        (["--save_resolution", "64"], "--save_resolution"),
        (["--n_save", "0"], "--n_save"),
        (["--t_save", "0"], "--t_save"),
        (["--dt", "-1"], "--dt"),
        (["--fkx", "20"], "--fkx"),
        (["--format", "npz"], "--format"),
        (["--alpha", "nan"], "--alpha"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, extra, flag):
    out = tmp_path / "bad"
    assert main(["generate", "--out", str(out), "--resolution", "32", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("vqturb generate: error:") and flag in err[0]
    assert not out.exists()  # nothing written for a bad command line


def test_writers_round_trip(tmp_path, rng):
    fields = rng.standard_normal((3, 8, 6)).astype(np.float32)
    paths = write_mat_trajectory(tmp_path / "t", fields, np.array([0.0, 0.5, 1.0]), start=4)
    assert [p.name for p in paths] == ["4.mat", "5.mat", "6.mat"]
    d = scipy.io.loadmat(paths[1])
    np.testing.assert_array_equal(d["Omega"], fields[1].astype(np.float64))
    assert float(np.squeeze(d["time"])) == 0.5

    cube = rng.standard_normal((2, 3, 8, 8))
    path = write_well_h5(tmp_path / "w.h5", cube, np.arange(3.0), parameters={"Re": 100.0})
    with h5py.File(path, "r") as f:
        np.testing.assert_allclose(f["t0_fields/vorticity"][()], cube.astype(np.float32))
        assert f.attrs["Re"] == 100.0 and list(f.attrs["simulation_parameters"]) == ["Re"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t", "w.h5"]


def test_h5_writer_leaves_nothing_on_error(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with WellH5Writer(tmp_path / "w.h5", n_traj=2, times=np.arange(3.0), shape=(8, 8)) as w:
            w.write(0, np.zeros((2, 8, 8)))
            raise KeyboardInterrupt  # e.g. the user stops a long run
    assert list(tmp_path.iterdir()) == []


def test_spectral_tail_ratio_flags_unresolved_fields(rng):
    c = 2 * np.pi * np.arange(48) / 48
    smooth = np.cos(3 * c)[:, None] * np.sin(2 * c)[None, :]
    assert spectral_tail_ratio(smooth[None]) < 1e-10
    noise = rng.standard_normal((2, 48, 48))
    assert spectral_tail_ratio(noise) > 1e-2


def test_a_full_disk_publishes_nothing_and_inspect_warns_about_an_unfinished_folder(
    tmp_path, capsys, monkeypatch
):
    import errno

    import vqturb.data.writers as gen

    real, calls = gen.write_mat_snapshot, []

    def full_disk(*a, **k):
        calls.append(1)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(gen, "write_mat_snapshot", full_disk)
    out = tmp_path / "out"
    assert main(["generate", "--out", str(out), *TINY]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if not x.startswith("generate [")]
    assert len(err) == 1 and "No space left" in err[0] and "Traceback" not in err[0]
    assert not any(out.iterdir()) and not (tmp_path / ".out.partial").exists()
    # a generate-style folder without its generate.json (written last) gets a warning
    monkeypatch.setattr(gen, "write_mat_snapshot", real)
    assert main(["generate", "--out", str(out), *TINY]) == 0
    (out / "generate.json").unlink()
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    assert "no generate.json" in capsys.readouterr().out
