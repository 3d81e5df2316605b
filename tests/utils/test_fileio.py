import json

import numpy as np
import pytest

from vqturb.errors import InputError
from vqturb.utils.fileio import atomic_open, atomic_save_npz, atomic_write_json
from vqturb.utils.progress import Progress


def test_atomic_open_keeps_old_content_on_error(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(p, "w") as f:
        f.write("half-written")
        raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["a.txt"], "temporary file left behind"


def test_atomic_json_and_npz_round_trip(tmp_path):
    atomic_write_json(tmp_path / "x.json", {"a": np.int64(3), "b": np.float32(0.5)})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 3, "b": 0.5}
    atomic_save_npz(tmp_path / "y.npz", z=np.arange(5))
    np.testing.assert_array_equal(np.load(tmp_path / "y.npz")["z"], np.arange(5))


def test_input_error_names_file_variable_found_expected():
    e = InputError("/d/3.mat", "variable 'Omega'", "found shape (4,)", "2 dimensions (H, W)")
    assert str(e) == "/d/3.mat: variable 'Omega': found shape (4,) (expected 2 dimensions (H, W))"


def test_progress_reports_fraction_and_fields(tmp_path):
    import io

    s = io.StringIO()
    with Progress(total=4, desc="t", unit="step", stream=s, log_every=0) as bar:
        for _ in range(4):
            bar.update(1, loss="0.5")
    out = s.getvalue().strip().splitlines()
    assert "100.0%" in out[-1] and "4/4" in out[-1] and "loss=0.5" in out[-1]


def test_atomic_files_get_ordinary_permissions(tmp_path):
    """mkstemp creates 0600 files; a published output must be readable like any other file."""
    import os

    mask = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "p.json", {"a": 1})
        assert (tmp_path / "p.json").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)
