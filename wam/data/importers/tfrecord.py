"""TFRecord files without TensorFlow: the framing reader and its CRC-32C.

A TFRecord file is a sequence of records: uint64 length, uint32 masked CRC-32C of the
length, the data, uint32 masked CRC-32C of the data (all little-endian). Open
X-Embodiment publishes its RLDS datasets as TFRecord shards
(:mod:`wam.data.importers.rlds`).
"""

from __future__ import annotations

import functools
import os
import struct
from typing import Sequence

import numpy as np

from wam.data.importers.sources import SourceError

_CRC_POLY = 0x82F63B78  # CRC-32C (Castagnoli), reflected
_CRC_LANE = 256         # bytes per lane of the vectorised CRC


@functools.cache
def _crc_tables() -> tuple[np.ndarray, tuple[list[int], ...]]:
  """The byte table of CRC-32C, and the tables that advance a register over _CRC_LANE
  zero bytes (a linear map, one table per byte of the register)."""
  table = []
  for i in range(256):
    c = i
    for _ in range(8):
      c = (c >> 1) ^ _CRC_POLY if c & 1 else c >> 1
    table.append(c)
  zeros = bytes(_CRC_LANE)
  shift = tuple([_crc_update(b << (8 * k), zeros, table) for b in range(256)]
                for k in range(4))
  return np.asarray(table, np.uint32), shift


def _crc_update(register: int, data: bytes, table: Sequence[int]) -> int:
  for b in data:
    register = table[(register ^ b) & 0xFF] ^ (register >> 8)
  return register


def crc32c(data: bytes) -> int:
  """CRC-32C of ``data`` (numpy: lanes of 256 bytes in parallel, then chained)."""
  table, shift = _crc_tables()
  register = 0xFFFFFFFF
  lanes = len(data) // _CRC_LANE
  if lanes >= 8:
    # The register update is linear: each lane's CRC from a zero register, in parallel,
    # then the lanes chained in order (advance over one lane, add the next).
    block = np.frombuffer(data, np.uint8, lanes * _CRC_LANE).reshape(lanes, _CRC_LANE)
    block = np.ascontiguousarray(block.T).astype(np.uint32)
    c = np.zeros(lanes, np.uint32)
    for column in block:
      c = table[(c ^ column) & 0xFF] ^ (c >> 8)
    s0, s1, s2, s3 = shift
    for value in c.tolist():
      register = (s0[register & 0xFF] ^ s1[(register >> 8) & 0xFF] ^
                  s2[(register >> 16) & 0xFF] ^ s3[register >> 24] ^ value)
    data = data[lanes * _CRC_LANE:]
  return _crc_update(register, data, table.tolist() if data else ()) ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
  """The masked CRC that TFRecord stores."""
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class TFRecordFile:
  """Random access to the records of a TFRecord file (offsets found by one header scan).

  Every length and every record is checked against its CRC; a damaged or truncated file
  raises :class:`SourceError` naming the file and the record.
  """

  def __init__(self, path: str):
    self.path = path
    self._file = open(path, "rb")  # pylint: disable=consider-using-with
    self.offsets: list[int] = []
    size = os.fstat(self._file.fileno()).st_size
    position = 0
    while position < size:
      header = self._file.read(12)
      if len(header) < 12:
        raise SourceError(f"{path}: truncated after record {len(self.offsets)} (a partial "
                          "record header at the end of the file).")
      length, length_crc = struct.unpack("<QI", header)
      if masked_crc32c(header[:8]) != length_crc:
        raise SourceError(f"{path}: record {len(self.offsets)} has a corrupt length header "
                          "(CRC mismatch); the file is damaged or not a TFRecord file.")
      if position + 16 + length > size:
        raise SourceError(f"{path}: record {len(self.offsets)} is truncated ({length} bytes "
                          f"announced, {size - position - 16} left).")
      self.offsets.append(position)
      position += 16 + length
      self._file.seek(position)

  def __len__(self) -> int:
    return len(self.offsets)

  def read(self, index: int) -> bytes:
    """The data of record ``index``, CRC-checked."""
    self._file.seek(self.offsets[index])
    length, _ = struct.unpack("<QI", self._file.read(12))
    data = self._file.read(length)
    (data_crc,) = struct.unpack("<I", self._file.read(4))
    if masked_crc32c(data) != data_crc:
      raise SourceError(f"{self.path}: record {index} is damaged (data CRC mismatch).")
    return data

  def close(self) -> None:
    self._file.close()


def read_tfrecord(path: str) -> list[bytes]:
  """Every record of a TFRecord file (for small files and tests)."""
  records = TFRecordFile(path)
  try:
    return [records.read(i) for i in range(len(records))]
  finally:
    records.close()
