"""The persistent compilation cache: where it goes, how it turns off, and that a command fills it."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from vqturb.errors import InputError
from vqturb.utils.compile_cache import (
    ENV,
    ENV_MAX_MB,
    compile_cache_dir,
    compile_cache_settings,
    configure_compile_cache,
    default_cache_dir,
)

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_default_folder_follows_xdg(tmp_path):
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "vqturb" / "jax"
    assert default_cache_dir({}) == Path.home() / ".cache" / "vqturb" / "jax"
    for on in ("", "1", "on", "TRUE"):
        env = {"XDG_CACHE_HOME": str(tmp_path), ENV: on}
        assert compile_cache_dir(env) == tmp_path / "vqturb" / "jax"


@pytest.mark.parametrize("off", ["0", "off", "False", " no "])
def test_off_values_turn_the_cache_off(off):
    assert compile_cache_dir({ENV: off}) is None
    assert compile_cache_settings({ENV: off}) == {"jax_enable_compilation_cache": False}


def test_a_path_moves_the_cache_and_the_size_is_bounded(tmp_path):
    s = compile_cache_settings({ENV: str(tmp_path / "c"), ENV_MAX_MB: "3"})
    assert s["jax_compilation_cache_dir"] == str(tmp_path / "c")
    assert s["jax_compilation_cache_max_size"] == 3 * 2**20
    assert s["jax_enable_compilation_cache"] is True
    assert 0 < s["jax_persistent_cache_min_compile_time_secs"] <= 1


@pytest.mark.parametrize("bad", ["0", "-5", "lots"])
def test_a_bad_size_bound_is_an_input_error(tmp_path, bad):
    with pytest.raises(InputError, match=ENV_MAX_MB):
        compile_cache_settings({ENV: str(tmp_path), ENV_MAX_MB: bad})


def test_configure_off_reaches_the_environment_and_jax():
    env = {ENV: "0"}
    assert configure_compile_cache(env) is None
    assert env["JAX_ENABLE_COMPILATION_CACHE"] == "false"
    assert jax.config.jax_enable_compilation_cache is False


def test_an_uncreatable_folder_turns_the_cache_off(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {ENV: str(blocker / "cache")}
    assert configure_compile_cache(env) is None
    assert env["JAX_ENABLE_COMPILATION_CACHE"] == "false"
    assert "compilation cache off" in capsys.readouterr().err


def _generate(tmp_path, name, *flags):
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env.update(XDG_CACHE_HOME=str(tmp_path / name), PYTHONPATH=SRC, JAX_PLATFORMS="cpu")
    argv = [
        sys.executable,
        "-m",
        "vqturb",
        *flags,
        "generate",
        "--out",
        str(tmp_path / f"d_{name}"),
    ]
    argv += ["--resolution", "16", "--n_traj", "1", "--n_save", "1", "--t_spinup", "0.05"]
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300)
    return tmp_path / name / "vqturb" / "jax"


def test_a_command_fills_the_default_cache_unless_told_not_to(tmp_path):
    cache = _generate(tmp_path, "on")
    assert any(p.name.endswith("-cache") for p in cache.iterdir())
    assert not _generate(tmp_path, "off", "--no_compile_cache").exists()
