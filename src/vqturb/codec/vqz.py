"""Compress a dataset to a ``.vqz`` token file and back (``vqturb compress`` / ``decompress``).

What a ``.vqz`` holds (see :mod:`vqturb.codec.container` for the byte layout):

- header: checkpoint SHA-256 (decompression refuses a different checkpoint), VAR mode, scales,
  field shape, number of fields, normalisation, source variable, trajectory names and sizes,
  times (as ``t0 + i·dt`` when they are regular), the entropy-model descriptor;
- sections ``vocab/k``: the codebook indices used at scale ``k`` (gap varints, deflated);
  ``table/k``: the count table of scale ``k`` (:mod:`vqturb.codec.entropy`); ``index``: the
  trajectory and time index of every field; ``times``: raw float64 times when irregular;
  ``payload``: the range-coded tokens.

Tables are estimated on the training split's tokens (held-out choice on the validation split) and
stored in the file, so every byte a reader needs is counted in the file size.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vqturb.codec.container import pack_vqz, read_vqz, unpack_vqz
from vqturb.codec.entropy import CONTEXTS, EntropyCodec, pack_ints, previous_frames, unpack_ints
from vqturb.codec.nsp_context import NSPContext, tokens_crc32
from vqturb.errors import InputError

FORMAT = "vqturb-tokens"


def _zigzag(d: np.ndarray) -> np.ndarray:
    d = np.asarray(d, dtype=np.int64)
    return np.where(d >= 0, 2 * d, -2 * d - 1)


def _unzigzag(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.int64)
    return np.where(z % 2 == 0, z // 2, -(z + 1) // 2)


def _pack_sorted(u: np.ndarray) -> bytes:
    u = np.asarray(u, dtype=np.int64)
    return pack_ints(np.diff(u, prepend=-1) - 1)


def _unpack_sorted(blob: bytes, n: int) -> np.ndarray:
    return np.cumsum(unpack_ints(blob, n) + 1) - 1


def _times_header(times: np.ndarray, time_index: np.ndarray) -> tuple[dict, bytes | None]:
    """Times that follow ``t0 + dt · time_index`` (every trajectory saved on one clock) →
    ``{"t0", "dt"}`` and no section; otherwise the raw float64 times, deflated."""
    t = np.asarray(times, dtype=np.float64)
    i = np.asarray(time_index, dtype=np.float64)
    if t.size and np.all(np.isfinite(t)):
        lo, hi = int(np.argmin(i)), int(np.argmax(i))
        dt = (t[hi] - t[lo]) / (i[hi] - i[lo]) if i[hi] > i[lo] else 0.0
        t0 = t[lo] - dt * i[lo]
        scale = max(abs(dt) * max(float(i.max()), 1.0), abs(t0), 1e-300)
        if np.max(np.abs(t0 + dt * i - t)) <= 1e-12 * scale:
            return {"t0": float(t0), "dt": float(dt)}, None
    return {"raw": True}, zlib.compress(t.astype("<f8").tobytes(), 9)


@dataclass(frozen=True, eq=False)
class TokenFile:
    """A decoded ``.vqz``."""

    header: dict
    # original codebook indices, one [N, s, s] int32 array per scale
    codes: list[np.ndarray]
    # per-scale sorted codebook indices in use
    vocab: list[np.ndarray]
    trajectory_id: np.ndarray
    time_index: np.ndarray
    times: np.ndarray
    codec: EntropyCodec
    # byte accounting: header / tables+vocab+index / payload / total
    sizes: dict


def encode_token_file(
    tok: Any,
    codes: list[np.ndarray],
    *,
    table_codes: list[np.ndarray] | None = None,
    table_index: tuple[np.ndarray, np.ndarray] | None = None,
    heldout_codes: list[np.ndarray] | None = None,
    heldout_index: tuple[np.ndarray, np.ndarray] | None = None,
    contexts: tuple[str, ...] = CONTEXTS,
    trajectory_id: np.ndarray,
    time_index: np.ndarray,
    times: np.ndarray,
    trajectory_names: list[str],
    field_shape: tuple[int, int],
    var: str = "Omega",
    file_number_offset: int = 0,
    nsp: NSPContext | None = None,
    verify: bool = True,
) -> tuple[bytes, EntropyCodec, dict]:
    """Build the bytes of a ``.vqz`` from original codes; ``tok`` must be fitted on (a superset
    of) ``codes`` and ``table_codes``. ``*_index`` are (trajectory id, time index) of the table
    and held-out fields, for the previous-frame context. With ``nsp``, every field whose previous
    frame is in the file is coded with that model (:mod:`vqturb.codec.nsp_context`) and the static
    tables code the others. Returns ``(data, codec, sizes)``."""
    local = tok.codes_to_local(codes)
    n = local[0].shape[0]
    n_symbols = [int(v) for v in tok.scale_vocab_sizes]
    prev = previous_frames(trajectory_id, time_index)
    first = prev < 0
    if nsp is not None:  # the static tables code only the first frames: no previous frame there
        contexts = tuple(c for c in contexts if c != "prev")
    if table_codes is None:
        train_local, train_prev = local, prev
    else:
        train_local = tok.codes_to_local(table_codes)
        train_prev = None if table_index is None else previous_frames(*table_index)
    held_local = tok.codes_to_local(heldout_codes) if heldout_codes is not None else None
    held_prev = None if heldout_index is None else previous_frames(*heldout_index)
    codec = EntropyCodec.fit(
        train_local,
        n_symbols,
        prev=train_prev,
        heldout=held_local,
        heldout_prev=held_prev,
        n_fields=n if nsp is None else int(first.sum()),
        contexts=contexts,
    )
    if nsp is None:
        payload, payload_nsp = codec.encode(local, prev), None
    else:
        payload = codec.encode([x[first] for x in local])
        payload_nsp = nsp.encode(local, tok.used, prev)

    traj = np.asarray(trajectory_id, dtype=np.int64)
    tidx = np.asarray(time_index, dtype=np.int64)
    used_traj = sorted({int(t) for t in traj})
    times = np.asarray(times, dtype=np.float64)
    time_info, time_blob = _times_header(times, tidx)
    header = {
        "format": FORMAT,
        "checkpoint_sha256": tok.checkpoint_sha256,
        "var_mode": tok.var_mode,
        "codebook_size": tok.vocab_size,
        "scales": list(tok.scales),
        "field_shape": [int(field_shape[0]), int(field_shape[1])],
        "n_fields": int(n),
        "normalization": {
            "mean": float(tok.normalization.mean),
            "std": float(tok.normalization.std),
        },
        "var": var,
        "file_number_offset": int(file_number_offset),
        "trajectories": [trajectory_names[t] for t in used_traj],
        "times": time_info,
        "codec": codec.descriptor(),
    }
    if nsp is not None:
        header["nsp"] = nsp.descriptor(local)
    # trajectory ids are renumbered to the ones present, so names stay aligned
    remap = {t: i for i, t in enumerate(used_traj)}
    traj_local = np.array([remap[int(t)] for t in traj], dtype=np.int64)
    sections: dict[str, bytes] = {}
    for k, u in enumerate(tok.used):
        sections[f"vocab/{k}"] = _pack_sorted(u)
    for k, blob in enumerate(codec.tables()):
        sections[f"table/{k}"] = blob
    index = np.concatenate(
        [_zigzag(np.diff(traj_local, prepend=0)), _zigzag(np.diff(tidx, prepend=0))]
    )
    sections["index"] = pack_ints(index)
    if time_blob is not None:
        sections["times"] = time_blob
    sections["payload"] = payload
    if payload_nsp is not None:
        sections["payload_nsp"] = payload_nsp
    data = pack_vqz(header, sections)
    if verify:
        back = decode_token_file(data, nsp=nsp).codes
        if not all(np.array_equal(a, np.asarray(b)) for a, b in zip(codes, back, strict=True)):
            raise RuntimeError("entropy coder round trip failed (a bug in vqturb)")
    sizes = {
        "total": len(data),
        "payload": len(payload) + len(payload_nsp or b""),
        "tables": sum(len(v) for k, v in sections.items() if k.startswith("table/")),
        "vocab": sum(len(v) for k, v in sections.items() if k.startswith("vocab/")),
        "index_and_times": len(sections["index"]) + len(sections.get("times", b"")),
    }
    sizes["header_and_framing"] = sizes["total"] - sum(len(v) for v in sections.values())
    return data, codec, sizes


def decode_token_file(
    data: bytes, path: str | os.PathLike | None = None, *, nsp: NSPContext | None = None
) -> TokenFile:
    """Parse and entropy-decode a ``.vqz``; every inconsistency is an InputError naming it.
    A file coded with an NSP context needs that model (``nsp``, the same checkpoint file)."""
    where = path if path is not None else "<vqz bytes>"
    header, sections = unpack_vqz(data, path)
    nsp_info = header.get("nsp")
    if nsp_info is not None:
        want = str(nsp_info.get("checkpoint_sha256", ""))
        if nsp is None:
            raise InputError(
                where, "nsp", f"the file was coded with an NSP model (sha256 {want[:16]}…)",
                "that NSP checkpoint (--nsp_checkpoint)",
            )  # fmt: skip
        if nsp.sha256 != want:
            raise InputError(
                where, "nsp checkpoint_sha256", f"the file was coded with {want[:16]}…",
                f"the same NSP checkpoint (given {nsp.sha256[:16]}…, {nsp.path})",
            )  # fmt: skip
    try:
        if header.get("format") != FORMAT:
            raise InputError(where, "header 'format'", repr(header.get("format")), repr(FORMAT))
        scales = [int(s) for s in header["scales"]]
        n = int(header["n_fields"])
        desc = header["codec"]
        if [int(s) for s in desc["scales"]] != scales:
            raise InputError(where, "codec scales", str(desc["scales"]), str(scales))
        n_sym = [int(v) for v in desc["n_symbols"]]
        vocab = [_unpack_sorted(sections[f"vocab/{k}"], n_sym[k]) for k in range(len(scales))]
        tables = [sections[f"table/{k}"] for k in range(len(scales))]
        codec = EntropyCodec.from_parts(desc, tables)
        index = unpack_ints(sections["index"], 2 * n)
        traj = np.cumsum(_unzigzag(index[:n]))
        tidx = np.cumsum(_unzigzag(index[n:]))
        ti = header["times"]
        if ti.get("raw"):
            times = np.frombuffer(zlib.decompress(sections["times"]), "<f8").astype(np.float64)
        else:
            times = ti["t0"] + ti["dt"] * tidx.astype(np.float64)
        prev = previous_frames(traj, tidx)
        if nsp_info is None:
            local = codec.decode(sections["payload"], n, prev)
        else:
            first = prev < 0
            head = codec.decode(sections["payload"], int(first.sum()))
            local = [np.zeros((n, s, s), np.int32) for s in scales]
            for x, h in zip(local, head, strict=True):
                x[first] = h
            local = nsp.decode(sections["payload_nsp"], local, vocab, prev)
            if tokens_crc32(local) != int(nsp_info["tokens_crc32"]):
                raise InputError(
                    where, "tokens_crc32", "the tokens decoded with the NSP model fail their checksum",
                    "the machine type and JAX version that wrote the file (the NSP's float "
                    "arithmetic must repeat exactly)",
                )  # fmt: skip
        codes = [u[ids].astype(np.int32) for u, ids in zip(vocab, local, strict=True)]
    except InputError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, zlib.error) as e:
        raise InputError(
            where, "vqz contents", f"inconsistent ({type(e).__name__}: {e})", "a valid .vqz"
        ) from e
    sizes = {
        "total": len(data),
        "payload": len(sections["payload"]) + len(sections.get("payload_nsp", b"")),
        "tables": sum(len(t) for t in tables),
    }
    return TokenFile(header, codes, vocab, traj, tidx, times, codec, sizes)


# ------------------------------------------------------------------ dataset-level commands


def _table_split(ds: Any, all_subset: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Positions (in ``all_subset``) of the training and validation snapshots."""
    try:
        splits = ds.split()
    except InputError:
        return np.arange(len(all_subset)), None
    lookup = {tuple(r): i for i, r in enumerate(np.asarray(all_subset.refs).tolist())}

    def positions(sub):
        return np.array([lookup[tuple(r)] for r in np.asarray(sub.refs).tolist()], dtype=np.int64)

    tr = positions(splits.train)
    va = positions(splits.val) if len(splits.val) else None
    return (tr if tr.size else np.arange(len(all_subset))), va


def compress(
    checkpoint: str | os.PathLike,
    data_dir: str | os.PathLike,
    output: str | os.PathLike,
    *,
    var: str = "Omega",
    h5_key: str | None = None,
    var_mode: bool | None = None,
    batch_size: int = 16,
    nsp_checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Tokenize every snapshot of ``data_dir``, entropy-code the tokens and write ``output``
    (with ``nsp_checkpoint``, a trained NSP model codes every field that follows its previous
    frame: :mod:`vqturb.codec.nsp_context`).

    Returns a report: bytes/field, bits/value, ratios against float32 and float64 storage and
    against the input files' size on disk, the reconstruction's relative L2, the byte breakdown.
    """
    from vqturb.data import open_dataset
    from vqturb.tokenizer import VQVAETokenizer
    from vqturb.utils.fileio import atomic_open

    tok = VQVAETokenizer(checkpoint, var_mode=var_mode, batch_size=batch_size)
    nsp = load_nsp_context(nsp_checkpoint, tok)
    ds = open_dataset(data_dir, var=var, h5_key=h5_key)
    subset = ds.all()
    t0 = time.perf_counter()
    scan = tok.scan(subset, recon_error=True, progress=progress)
    t_tok = time.perf_counter() - t0
    tok.fit_codes(scan.codes)
    tr, va = _table_split(ds, subset)
    t0 = time.perf_counter()
    ids = (scan.trajectory_id, scan.time_index)
    data, codec, sizes = encode_token_file(
        tok,
        scan.codes,
        table_codes=[c[tr] for c in scan.codes],
        table_index=(ids[0][tr], ids[1][tr]),
        heldout_codes=None if va is None else [c[va] for c in scan.codes],
        heldout_index=None if va is None else (ids[0][va], ids[1][va]),
        trajectory_id=scan.trajectory_id,
        time_index=scan.time_index,
        times=subset.times(),
        trajectory_names=[t.name for t in ds.trajectories],
        field_shape=ds.shape,
        var=var,
        file_number_offset=_file_number_offset(ds),
        nsp=nsp,
    )
    t_code = time.perf_counter() - t0
    with atomic_open(output, "wb") as f:
        f.write(data)
    n = len(subset)
    h, w = ds.shape
    src_bytes = _source_bytes(ds)
    report = {
        "output": str(output),
        "n_fields": n,
        "field_shape": [h, w],
        "file_bytes": len(data),
        "bytes_per_field": len(data) / n,
        "bits_per_value": 8 * len(data) / (n * h * w),
        "ratio_vs_float32": 4 * n * h * w / len(data),
        "ratio_vs_float64": 8 * n * h * w / len(data),
        "ratio_vs_input_files": (src_bytes / len(data)) if src_bytes else None,
        "input_bytes": src_bytes,
        "rel_l2_mean": float(np.mean(scan.rel_l2)),
        "rel_l2_max": float(np.max(scan.rel_l2)),
        "contexts": [f"{m.context}" + (f"(a={m.alpha})" if m.alpha else "") for m in codec.models],
        "nsp_checkpoint": None if nsp is None else nsp.path,
        "sizes": sizes,
        "tokenize_fields_per_s": n / t_tok,
        "entropy_code_fields_per_s": n / t_code,
    }
    return report


def load_nsp_context(path: str | os.PathLike | None, tok: Any) -> NSPContext | None:
    """The NSP context of ``path`` for the tokenizer ``tok``'s VQ-VAE (None without a path)."""
    if path is None:
        return None
    return NSPContext.load(path, tok.model.codebooks(), tok.checkpoint_sha256)


def _file_number_offset(ds: Any) -> int:
    """``n0`` when every trajectory's files are named ``n0.mat, n0+1.mat, …`` in time order (what
    ``vqturb generate`` writes, from 1), so that decompressed files get the same names; else 0."""
    offsets = set()
    for tr in ds.trajectories:
        stems = [p.stem for p in tr.files]
        if not stems or not all(x.isdigit() for x in stems):
            return 0
        nums = [int(x) for x in stems]
        if nums != list(range(nums[0], nums[0] + len(nums))):
            return 0
        offsets.add(nums[0])
    return offsets.pop() if len(offsets) == 1 else 0


def _source_bytes(ds: Any) -> int | None:
    files: set[Path] = set()
    for tr in ds.trajectories:
        files.update(tr.files)
        if tr.h5_path is not None:
            files.add(Path(tr.h5_path))
    try:
        return sum(p.stat().st_size for p in files) or None
    except OSError:
        return None


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name).strip("._") or "traj"


def decompress(
    vqz: str | os.PathLike,
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    *,
    batch_size: int = 16,
    nsp_checkpoint: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Decode ``vqz`` with ``checkpoint`` (and ``nsp_checkpoint`` for a file coded with an NSP
    context) into ``output/<trajectory>/<n>.mat`` files (``Omega``
    float64 ``[H, W]`` and ``time``, the SPEC's format; ``n`` as in the input when its files were
    numbered consecutively, else the time index). Refuses a checkpoint whose
    SHA-256 differs from the one the file was made with.

    ``output`` must be new, empty, or hold only what an earlier ``decompress`` wrote (its
    ``decompressed.json`` lists it), unless ``overwrite``: raw data is never replaced by a lossy
    reconstruction by accident. The files are written into a hidden staging folder and moved
    into ``output`` when all are written, ``decompressed.json`` last."""
    import scipy.io

    from vqturb.tokenizer import VQVAETokenizer
    from vqturb.utils.fileio import atomic_write_json, staged_output
    from vqturb.utils.progress import Progress

    out = Path(output)
    check_decompress_output(out, overwrite)  # before any work
    header, _ = read_vqz(vqz)  # validates framing and CRC before any heavy work
    tok = VQVAETokenizer(checkpoint, batch_size=batch_size)
    if header.get("checkpoint_sha256") != tok.checkpoint_sha256:
        raise InputError(
            vqz,
            "checkpoint_sha256",
            f"the file was made with checkpoint {str(header.get('checkpoint_sha256'))[:16]}…",
            f"the same checkpoint (given {tok.checkpoint_sha256[:16]}…, {checkpoint})",
        )
    t0 = time.perf_counter()
    tf = decode_token_file(Path(vqz).read_bytes(), vqz, nsp=load_nsp_context(nsp_checkpoint, tok))
    t_dec = time.perf_counter() - t0
    if bool(header["var_mode"]) != tok.var_mode:
        raise InputError(vqz, "var_mode", str(header["var_mode"]), str(tok.var_mode))
    tok.set_vocabulary(header["scales"], tf.vocab)
    names = [_safe_name(s) for s in header["trajectories"]]
    n = int(header["n_fields"])
    var = header.get("var", "Omega")
    offset = int(header.get("file_number_offset", 0))
    written: list[str] = []
    t0 = time.perf_counter()
    with staged_output(
        out, "--output", "a writable folder with room for the decompressed files"
    ) as stage:
        with Progress(n, "decompress", "field", disable=not progress) as bar:
            for start in range(0, n, batch_size):
                sl = slice(start, min(n, start + batch_size))
                fields = tok.decode_codes([c[sl] for c in tf.codes])
                for j, i in enumerate(range(sl.start, sl.stop)):
                    rel = f"{names[int(tf.trajectory_id[i])]}/{int(tf.time_index[i]) + offset}.mat"
                    (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                    scipy.io.savemat(
                        stage / rel,
                        {var: fields[j].astype(np.float64), "time": float(tf.times[i])},
                        do_compression=False,
                    )
                    written.append(rel)
                bar.update(sl.stop - sl.start)
    atomic_write_json(
        out / MANIFEST, {"vqz": str(vqz), "checkpoint": str(checkpoint), "files": written}
    )
    t_write = time.perf_counter() - t0
    h, w = header["field_shape"]
    return {
        "output": str(out),
        "n_fields": n,
        "files_written": len(written),
        "file_bytes": tf.sizes["total"],
        "bits_per_value": 8 * tf.sizes["total"] / (n * h * w),
        "entropy_decode_fields_per_s": n / max(t_dec, 1e-9),
        "decode_and_write_fields_per_s": n / max(t_write, 1e-9),
    }


MANIFEST = "decompressed.json"


def check_decompress_output(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, or a folder holding files an earlier ``decompress`` did
    not write (per its :data:`MANIFEST`), unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "--output", "is a file", "a folder for the .mat files")
    if not out.is_dir() or overwrite:
        return
    ours: set[str] = {MANIFEST}
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            ours |= set(json.loads(manifest.read_text())["files"])
        except (ValueError, KeyError, TypeError):
            pass
    foreign = sorted(
        str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()
        and str(p.relative_to(out)) not in ours
    )  # fmt: skip
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise InputError(
            out, "--output", f"holds files decompress did not write ({', '.join(foreign[:3])}{more})",
            "a new or empty folder, or --overwrite to write over them",
        )  # fmt: skip


def raw_bits_per_field(scales: list[int] | tuple[int, ...], codebook_size: int) -> int:
    """Bits of the uncoded indices: Σ_k s_k² · ⌈log2 V⌉."""
    return sum(int(s) ** 2 for s in scales) * max(1, math.ceil(math.log2(codebook_size)))
