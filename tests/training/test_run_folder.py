"""One run per run folder: a folder holding another run is refused unless resumed or overwritten,
a second live run is refused by the lock (a killed run's lock is taken over), interrupted writes
are cleaned up and metrics.jsonl holds each step once after a resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vqturb.cli import main
from vqturb.errors import InputError
from vqturb.training.run_folder import claim_run_folder, truncate_metrics

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _args(tokens_path, run, *extra):
    vq = Path(tokens_path).parent / "vqvae.eqx"
    return ["train-nsp", "--tokens_path", str(tokens_path), "--vqvae_checkpoint", str(vq),
            "--checkpoint_dir", str(run), "--batch_size", "4", "--n_layer", "1", "--n_head", "2",
            "--n_embd", "16", "--log_every", "1", "--save_every", "2", "--val_every", "2",
            "--no_progress", *extra]  # fmt: skip


def test_a_folder_holding_a_run_is_refused_resumed_or_overwritten(tmp_path, tokens_path, capsys):
    run = tmp_path / "run"
    assert main(_args(tokens_path, run, "--max_steps", "2")) == 0
    final = (run / "final.eqx").read_bytes()
    metrics = (run / "metrics.jsonl").read_text()
    capsys.readouterr()
    # a fresh run into it: refused before anything is written, one line naming the folder
    assert main(_args(tokens_path, run, "--max_steps", "4")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(run) in err and "--overwrite" in err
    assert (run / "final.eqx").read_bytes() == final and (
        run / "metrics.jsonl"
    ).read_text() == metrics
    # --resume auto continues it; --overwrite replaces it (the old run's checkpoints gone)
    assert main(_args(tokens_path, run, "--max_steps", "4", "--resume", "auto")) == 0
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 4
    assert main(_args(tokens_path, run, "--max_steps", "2", "--overwrite")) == 0
    assert sorted(p.name for p in run.glob("ckpt_*.eqx")) == ["ckpt_000000002.eqx"]
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) == 2


HOLD = """
import sys, time
sys.path.insert(0, {src!r})
from vqturb.training.run_folder import claim_run_folder
lock = claim_run_folder({run!r}, resume=False, overwrite=False)
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_live_run_is_refused_and_a_killed_runs_lock_is_taken_over(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(src=SRC, run=str(run))],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=f"pid {holder.pid}") as e:
            claim_run_folder(run, resume=False, overwrite=False)
        assert str(run) in str(e.value) and "--checkpoint_dir" in str(e.value)
    finally:
        holder.kill()  # like kill -9: the kernel releases the lock
        holder.wait()
        holder.stdout.close()
    with claim_run_folder(run, resume=False, overwrite=False) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_interrupted_writes_are_removed_and_metrics_truncated_on_resume(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    stale = [run / ".ckpt_000000004.eqx.ab12.tmp", run / ".state_000000004.x9.eqx"]
    for p in stale:
        p.write_bytes(b"half a file")
    (run / "notes.txt").write_text("the user's own file")
    with claim_run_folder(run, resume=False, overwrite=False):
        pass
    assert not any(p.exists() for p in stale) and (run / "notes.txt").exists()
    m = run / "metrics.jsonl"
    m.write_text(
        "".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2, 3, 4)) + '{"st'
    )
    assert truncate_metrics(m, 2) == 3
    assert [json.loads(x)["step"] for x in m.read_text().splitlines()] == [1, 2]


def test_resuming_on_changed_data_is_refused(tmp_path, tokens_path, capsys):
    from synthetic_tokens import write_synthetic_tokens
    from vqturb.utils.fileio import file_sha256

    run = tmp_path / "run"
    assert main(_args(tokens_path, run, "--max_steps", "2")) == 0
    # the same file name, with a trajectory added (same VQ-VAE checkpoint)
    vq = Path(tokens_path).parent / "vqvae.eqx"
    changed = tmp_path / "more" / "tokens.npz"
    changed.parent.mkdir()
    (changed.parent / "vqvae.eqx").write_bytes(vq.read_bytes())
    write_synthetic_tokens(changed, n_traj=5, n_steps=12, checkpoint_sha256=file_sha256(vq))
    capsys.readouterr()
    assert main(_args(changed, run, "--max_steps", "4", "--resume", "auto")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data_fingerprint" in err
