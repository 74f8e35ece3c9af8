"""Read telephone WAV files: PCM16, mu-law or A-law, mono, 8 or 16 kHz.

The standard library's ``wave`` module reads only linear PCM, so the RIFF
chunks are parsed here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["WavAudio", "read_wav"]

# WAVE format tags (RFC 2361): linear PCM, A-law, mu-law.
FORMAT_ENCODINGS = {1: "pcm16", 6: "alaw", 7: "ulaw"}
EXTENSIBLE_FORMAT = 0xFFFE
# Size of a data chunk whose writer never learnt its length, as streaming
# recorders leave it: the samples run to the end of the file.
UNKNOWN_SIZE = 0xFFFFFFFF
ENCODING_NAMES = {"pcm16": "PCM", "ulaw": "mu-law", "alaw": "A-law"}


@dataclass(frozen=True)
class WavAudio:
    """Samples of a telephone WAV file.

    Attributes
    ----------
    samples : ndarray, shape (n,)
        int16 for "pcm16", uint8 G.711 codes otherwise.
    sample_rate_hz : int
    encoding : str
        "pcm16", "ulaw" or "alaw".
    """

    samples: np.ndarray
    sample_rate_hz: int
    encoding: str


def read_wav(path) -> WavAudio:
    """Read a mono 8 or 16 kHz WAV file in PCM16, mu-law or A-law.

    A data chunk of size 0xFFFFFFFF, as streaming recorders leave it, runs
    to the end of the file.

    Raises
    ------
    ValueError
        For anything else, naming the file and the offending value.
    OSError
        When the file cannot be read.
    """
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    fmt = None
    samples = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        if chunk_id == b"data" and size == UNKNOWN_SIZE:
            size = len(data) - offset - 8
            if fmt is not None and fmt[0] == "pcm16":
                # A recording cut mid-sample loses the partial sample.
                size -= size % 2
        body = data[offset + 8 : offset + 8 + size]
        if len(body) < size:
            raise ValueError(
                f"{path}: truncated {chunk_id.decode('latin-1')!r} chunk: "
                f"{len(body)} of {size} bytes"
            )
        if chunk_id == b"fmt ":
            fmt = _parse_format(path, body)
        elif chunk_id == b"data":
            samples = body
        offset += 8 + size + (size & 1)
    if fmt is None:
        raise ValueError(f"{path}: no 'fmt ' chunk")
    if samples is None:
        raise ValueError(f"{path}: no 'data' chunk")
    encoding, sample_rate_hz = fmt
    if encoding == "pcm16":
        if len(samples) % 2:
            raise ValueError(f"{path}: data chunk has an odd length {len(samples)}")
        array = np.frombuffer(samples, dtype="<i2").astype(np.int16)
    else:
        array = np.frombuffer(samples, dtype=np.uint8).copy()
    return WavAudio(array, sample_rate_hz, encoding)


def _parse_format(path: Path, body: bytes) -> tuple[str, int]:
    if len(body) < 16:
        raise ValueError(f"{path}: 'fmt ' chunk too short ({len(body)} bytes)")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
    if tag == EXTENSIBLE_FORMAT and len(body) >= 26:
        # WAVE_FORMAT_EXTENSIBLE keeps the real tag in the sub-format GUID.
        (tag,) = struct.unpack_from("<H", body, 24)
    if tag not in FORMAT_ENCODINGS:
        raise ValueError(
            f"{path}: unsupported WAVE format tag {tag}; use 1 (PCM), 6 (A-law) "
            "or 7 (mu-law)"
        )
    if channels != 1:
        raise ValueError(f"{path}: {channels} channels; only mono is supported")
    if rate not in (8000, 16000):
        raise ValueError(f"{path}: sample rate {rate} Hz; use 8000 or 16000 Hz")
    encoding = FORMAT_ENCODINGS[tag]
    expected_bits = 16 if encoding == "pcm16" else 8
    if bits != expected_bits:
        name = ENCODING_NAMES[encoding]
        raise ValueError(
            f"{path}: {bits}-bit {name}; only 16-bit PCM, 8-bit mu-law or 8-bit "
            "A-law is supported"
        )
    return encoding, rate
