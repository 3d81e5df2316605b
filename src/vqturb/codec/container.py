"""The ``.vqz`` file: a JSON header, named binary sections and a CRC32, every byte counted.

Layout (little-endian)::

    offset  size  content
    0       4     magic b"\\x89VQZ"
    4       1     format version (1)
    5       4     n = length of the header in bytes (u32)
    9       n     header: compact UTF-8 JSON object, deflated (zlib; a few hundred bytes saved
                  per file); header["sections"] = [[name, length], ...]
    9+n     ...   the sections, concatenated in the order the header lists them
    end-4   4     CRC32 (zlib) of every byte before it

The header carries what a reader needs to interpret the sections (scales, field shape,
normalisation, checkpoint SHA-256, number of fields, entropy-model descriptors); sections carry the
count tables, vocabularies and the coded payload. A wrong magic, version, length, CRC or JSON raises
:class:`~vqturb.errors.InputError` naming the file.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Mapping

from vqturb.errors import InputError
from vqturb.utils.fileio import atomic_open

MAGIC = b"\x89VQZ"
VERSION = 1
_PREFIX = struct.Struct("<4sBI")


def pack_vqz(header: Mapping, sections: Mapping[str, bytes]) -> bytes:
    """Serialise ``header`` (JSON-safe, without a ``"sections"`` key) and ``sections``."""
    if "sections" in header:
        raise ValueError("'sections' is reserved in the header")
    head = dict(header)
    head["sections"] = [[name, len(blob)] for name, blob in sections.items()]
    text = zlib.compress(json.dumps(head, separators=(",", ":"), sort_keys=True).encode(), 9)
    body = _PREFIX.pack(MAGIC, VERSION, len(text)) + text + b"".join(sections.values())
    return body + struct.pack("<I", zlib.crc32(body))


def unpack_vqz(data: bytes, path: str | os.PathLike | None = None) -> tuple[dict, dict[str, bytes]]:
    """Inverse of :func:`pack_vqz`; validates magic, version, lengths and the CRC."""
    where = path if path is not None else "<vqz bytes>"
    if len(data) < _PREFIX.size + 4:
        raise InputError(where, "vqz file", f"only {len(data)} bytes", "a .vqz file (truncated?)")
    magic, version, n = _PREFIX.unpack_from(data, 0)
    if magic != MAGIC:
        raise InputError(where, "magic bytes", repr(magic), f"{MAGIC!r} (not a .vqz file)")
    if version != VERSION:
        raise InputError(where, "format version", str(version), str(VERSION))
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise InputError(
            where, "CRC32", "checksum mismatch", "an intact file (corrupt or truncated)"
        )
    start = _PREFIX.size
    if start + n > len(data) - 4:
        raise InputError(where, "header length", str(n), "a header inside the file")
    try:
        header = json.loads(zlib.decompress(data[start : start + n]).decode("utf-8"))
        layout = [(str(a), int(b)) for a, b in header.pop("sections")]
    except (ValueError, KeyError, TypeError, AttributeError, zlib.error) as e:
        raise InputError(where, "header", f"unreadable JSON ({e})", "a .vqz header") from e
    pos = start + n
    sections: dict[str, bytes] = {}
    for name, length in layout:
        if length < 0 or pos + length > len(data) - 4:
            raise InputError(where, f"section {name!r}", f"length {length}", "inside the file")
        sections[name] = data[pos : pos + length]
        pos += length
    if pos != len(data) - 4:
        raise InputError(where, "file length", f"{len(data) - 4 - pos} stray bytes", "none")
    return header, sections


def write_vqz(path: str | os.PathLike, header: Mapping, sections: Mapping[str, bytes]) -> int:
    """Write a ``.vqz`` atomically; returns the file size in bytes."""
    data = pack_vqz(header, sections)
    with atomic_open(path, "wb") as f:
        f.write(data)
    return len(data)


def read_vqz(path: str | os.PathLike) -> tuple[dict, dict[str, bytes]]:
    """Read and validate a ``.vqz``: ``(header, sections)``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError(path, None, f"cannot read ({e.strerror})", "a readable .vqz file") from e
    return unpack_vqz(data, path)
