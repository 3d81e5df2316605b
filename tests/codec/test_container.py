"""The .vqz container: exact round trip, every byte accounted for, clear errors."""

import pytest

from vqturb.codec.container import MAGIC, pack_vqz, read_vqz, unpack_vqz, write_vqz
from vqturb.errors import InputError

HEADER = {"scales": [1, 2], "n_fields": 3, "normalization": {"mean": 0.5, "std": 2.0}}
SECTIONS = {"table/0": b"\x01\x02", "payload": bytes(range(200))}


def test_round_trip_and_size(tmp_path):
    n = write_vqz(tmp_path / "a.vqz", HEADER, SECTIONS)
    assert (tmp_path / "a.vqz").stat().st_size == n
    header, sections = read_vqz(tmp_path / "a.vqz")
    assert header == HEADER
    assert sections == SECTIONS
    assert list(sections) == list(SECTIONS)  # order preserved


def test_size_is_prefix_header_sections_crc():
    data = pack_vqz(HEADER, SECTIONS)
    header_len = int.from_bytes(data[5:9], "little")
    assert data[:4] == MAGIC
    assert len(data) == 9 + header_len + sum(map(len, SECTIONS.values())) + 4


@pytest.mark.parametrize("cut", [0, 3, 8, 20, -1, -5])
def test_truncated_file_is_an_input_error(tmp_path, cut):
    data = pack_vqz(HEADER, SECTIONS)
    p = tmp_path / "t.vqz"
    p.write_bytes(data[:cut])
    with pytest.raises(InputError, match="t.vqz"):
        read_vqz(p)


def test_flipped_byte_fails_the_crc():
    data = bytearray(pack_vqz(HEADER, SECTIONS))
    for pos in (20, len(data) - 50):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        with pytest.raises(InputError, match="CRC32"):
            unpack_vqz(bytes(bad))


def test_wrong_magic_and_version():
    data = pack_vqz(HEADER, SECTIONS)
    with pytest.raises(InputError, match="magic"):
        unpack_vqz(b"PK\x03\x04" + data[4:])
    with pytest.raises(InputError, match="version"):
        unpack_vqz(data[:4] + b"\x09" + data[5:])


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        read_vqz(tmp_path / "nope.vqz")
