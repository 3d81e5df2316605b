"""read_field / read_time: every MAT version, and every kind of bad input named clearly."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io
from matfile_helpers import FORMATS, write_field, write_mat73

from vqturb.data import field_info, list_variables, mat_version, read_field, read_time
from vqturb.errors import InputError


def _assert_names(err: pytest.ExceptionInfo, path, var: str = "Omega") -> str:
    msg = str(err.value)
    assert str(path) in msg
    assert f"'{var}'" in msg
    return msg


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_every_format(tmp_path, rng, fmt, dtype):
    a = rng.standard_normal((5, 7)).astype(dtype)  # non-square: catches a missing transpose
    p = write_field(tmp_path / "x.mat", a, fmt, time=3.25, other=np.ones((2, 2)))
    b = read_field(p)
    assert b.dtype == dtype  # precision kept as stored
    assert b.shape == (5, 7)
    np.testing.assert_array_equal(b, a)
    assert b.flags.c_contiguous
    assert read_time(p) == 3.25
    info = field_info(p)
    assert info.shape == (5, 7)
    assert info.version == {"v4": "4", "v5": "5", "v5c": "5", "v73": "7.3"}[fmt]
    assert mat_version(p) == info.version


def test_v73_is_transposed_from_column_major(tmp_path):
    # what MATLAB writes for [1 2 3; 4 5 6]: the HDF5 dataset holds the transpose
    p = tmp_path / "m.mat"
    with h5py.File(p, "w", userblock_size=512) as f:
        d = f.create_dataset("Omega", data=np.array([[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]))
        d.attrs["MATLAB_class"] = np.bytes_("double")
    np.testing.assert_array_equal(read_field(p), [[1, 2, 3], [4, 5, 6]])
    assert list_variables(p) == [("Omega", (2, 3), "double")]


def test_other_variable_name_and_integers(tmp_path):
    p = tmp_path / "w.mat"
    scipy.io.savemat(p, {"W": np.arange(12, dtype=np.int16).reshape(3, 4)})
    a = read_field(p, var="W")
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, np.arange(12).reshape(3, 4))
    assert read_time(p) is None


def test_missing_variable_lists_the_variables(tmp_path, rng):
    for fmt in FORMATS:
        p = write_field(tmp_path / f"{fmt}.mat", rng.standard_normal((4, 4)), fmt, time=1.0)
        with pytest.raises(InputError) as e:
            read_field(p, var="vort")
        msg = _assert_names(e, p, "vort")
        assert "'Omega'" in msg and "'time'" in msg  # the variables present
        with pytest.raises(InputError):
            field_info(p, var="vort")


@pytest.mark.parametrize(
    "value, words",
    [
        (np.zeros((2, 3, 4)), "3 dimensions"),
        (np.zeros((0, 0)), "empty"),
        (np.ones((3, 3)) + 1j, "complex"),
        ("hello", "non-numeric"),
        (np.array([np.ones(2), "x"], dtype=object), "non-numeric"),
        ({"a": 1.0}, "non-numeric"),
        (np.ones((3, 3), dtype=bool), "non-numeric"),
    ],
    ids=["3d", "empty", "complex", "char", "cell", "struct", "logical"],
)
def test_bad_content_v5(tmp_path, value, words):
    p = tmp_path / "bad.mat"
    scipy.io.savemat(p, {"Omega": value})
    with pytest.raises(InputError) as e:
        read_field(p)
    msg = _assert_names(e, p)
    assert words in msg
    assert "expected" in msg


def test_bad_content_v73(tmp_path):
    p = write_mat73(tmp_path / "l.mat", {"Omega": np.ones((3, 3), dtype=bool)})
    with pytest.raises(InputError, match="non-numeric"):
        read_field(p)
    p = write_mat73(tmp_path / "c.mat", {"Omega": np.zeros((2, 2, 2))})
    with pytest.raises(InputError, match="3 dimensions"):
        read_field(p)
    p = tmp_path / "cplx.mat"
    with h5py.File(p, "w") as f:
        dt = np.dtype([("real", "<f8"), ("imag", "<f8")])
        f.create_dataset("Omega", data=np.zeros((3, 3), dtype=dt))
        f["Omega"].attrs["MATLAB_class"] = np.bytes_("double")
    with pytest.raises(InputError, match="complex") as e:
        read_field(p)
    _assert_names(e, p)
    p = tmp_path / "s.mat"
    with h5py.File(p, "w") as f:
        g = f.create_group("Omega")
        g.attrs["MATLAB_class"] = np.bytes_("struct")
    with pytest.raises(InputError, match="struct"):
        read_field(p)


@pytest.mark.parametrize("fmt", FORMATS)
def test_nan_and_inf_are_counted(tmp_path, fmt):
    a = np.zeros((4, 5))
    a[0, 0] = a[1, 2] = np.nan
    a[3, 3] = -np.inf
    p = write_field(tmp_path / "n.mat", a, fmt)
    with pytest.raises(InputError) as e:
        read_field(p)
    msg = _assert_names(e, p)
    assert "2 NaN and 1 Inf values out of 20" in msg


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("big", [1e30, 1e300])
def test_values_whose_squares_overflow_float32_are_refused_by_magnitude(tmp_path, fmt, big):
    a = np.ones((4, 5))
    a[2, 1] = -big
    p = write_field(tmp_path / "b.mat", a, fmt)
    with pytest.raises(InputError) as e:
        read_field(p)
    msg = _assert_names(e, p)
    assert f"{big:.3g}" in msg and "overflow float32" in msg
    a[2, 1] = 1e18  # large, but its square still fits
    assert np.max(read_field(write_field(tmp_path / "ok.mat", a, fmt))) == 1e18


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_files(tmp_path, rng, fmt):
    src = write_field(tmp_path / "ok.mat", rng.standard_normal((32, 32)), fmt)
    data = src.read_bytes()
    for cut in (len(data) // 2, 100, 0):
        p = tmp_path / f"cut{cut}.mat"
        p.write_bytes(data[:cut])
        with pytest.raises(InputError) as e:
            read_field(p)
        assert str(p) in str(e.value)


def test_not_a_mat_file(tmp_path):
    p = tmp_path / "notes.mat"
    p.write_text("these are not the fields you are looking for\n" * 20)
    with pytest.raises(InputError, match="not a MAT-file") as e:
        read_field(p)
    assert str(p) in str(e.value)
    with pytest.raises(InputError, match="no such file"):
        read_field(tmp_path / "missing.mat")


def test_bad_time_variable(tmp_path):
    p = tmp_path / "t.mat"
    scipy.io.savemat(p, {"Omega": np.ones((2, 2)), "time": np.ones(3)})
    with pytest.raises(InputError, match="one real number"):
        read_time(p)


def test_v5_fast_path_agrees_with_scipy_and_defers_when_unsure(tmp_path, rng):
    from vqturb.data.mat import _read_mat_scipy
    from vqturb.data.mat_v5 import read_v5

    a = rng.standard_normal((6, 9))
    p = tmp_path / "f.mat"
    scipy.io.savemat(p, {"x": np.ones((2, 2)), "Omega": a, "time": 2.0, "abc": np.ones(1)})
    fast = read_v5(p, "Omega")
    assert fast is not None and fast.flags.f_contiguous  # MATLAB order; read_field copies to C
    assert read_field(p).flags.c_contiguous
    np.testing.assert_array_equal(fast, _read_mat_scipy(p, "Omega"))
    np.testing.assert_array_equal(fast, a)
    assert read_v5(p, "abc") is not None  # 4-char name: packed "small data element"
    assert read_time(p) == 2.0
    # compressed (MATLAB's default): read directly too, skipping the variables before it
    scipy.io.savemat(p, {"x": np.ones((9, 9)), "Omega": a, "time": 4.0}, do_compression=True)
    np.testing.assert_array_equal(read_v5(p, "Omega"), a)
    assert read_time(p) == 4.0
    assert read_v5(p, "missing") is None
    # integer-stored, complex and missing variables: scipy decides
    scipy.io.savemat(p, {"Omega": np.ones((3, 3), dtype=np.int16)})
    assert read_v5(p, "Omega") is None
    scipy.io.savemat(p, {"Omega": a + 1j})
    assert read_v5(p, "Omega") is None
    assert read_v5(p, "missing") is None


def test_field_info_refuses_what_read_field_refuses_v73(tmp_path):
    p = write_mat73(tmp_path / "l.mat", {"Omega": np.ones((3, 3), dtype=bool)})
    with pytest.raises(InputError, match="logical"):
        field_info(p)
    p = tmp_path / "cplx.mat"
    with h5py.File(p, "w") as f:
        dt = np.dtype([("real", "<f8"), ("imag", "<f8")])
        f.create_dataset("Omega", data=np.zeros((3, 3), dtype=dt))
        f["Omega"].attrs["MATLAB_class"] = np.bytes_("double")
    with pytest.raises(InputError, match="complex"):
        field_info(p)
    p = write_mat73(tmp_path / "ok.mat", {"Omega": np.ones((3, 5), dtype=np.float32)})
    assert field_info(p).dtype == "float32" and field_info(p).shape == (3, 5)


def test_complex_is_refused_without_relying_on_warnings(tmp_path):
    import warnings

    for fmt in ("v4", "v5", "v5c"):
        p = write_field(tmp_path / f"{fmt}.mat", np.ones((3, 3)) + 2j, fmt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # production settings: warnings are not errors
            with pytest.raises(InputError, match="complex values") as e:
                read_field(p)
        assert str(p) in str(e.value)


@pytest.mark.parametrize("cls, want", [(6, np.float64), (7, np.float32)])
def test_double_or_single_stored_as_integers(tmp_path, cls, want):
    # MATLAB may store a double array of small integers with an int16 storage type: craft one
    # by relabelling scipy's int16 matrix as class double (6) / single (7) in the array flags
    p = tmp_path / "stored.mat"
    values = np.arange(12, dtype=np.int16).reshape(3, 4)
    scipy.io.savemat(p, {"Omega": values})
    raw = bytearray(p.read_bytes())
    assert raw[144] == 10  # mxINT16_CLASS, first byte of the array-flags data
    raw[144] = cls
    p.write_bytes(bytes(raw))
    assert list_variables(p)[0][2] == {6: "double", 7: "single"}[cls]
    a = read_field(p)
    assert a.dtype == want
    np.testing.assert_array_equal(a, values)
