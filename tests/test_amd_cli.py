"""The `callsure amd` command on real corpus files and on bad files."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

from callsure.dsp import read_wav


def run_amd(*paths):
    return subprocess.run(
        [sys.executable, "-m", "callsure.actors.cli", "amd", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def wav_bytes(tag=1, channels=1, rate=8000, bits=16, data=b"\x00\x00" * 800):
    fmt = struct.pack(
        "<HHIIHH",
        tag,
        channels,
        rate,
        rate * channels * bits // 8,
        channels * bits // 8,
        bits,
    )
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.slow
def test_amd_cli_whole_corpus_meets_exact_target(amd_corpus):
    import csv

    rows = list(csv.DictReader(open(amd_corpus / "labels.csv", newline="")))
    result = run_amd(*(amd_corpus / row["file"] for row in rows))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(rows)
    right = sum(
        line["verdict"] == row["label"] for line, row in zip(lines, rows, strict=False)
    )
    assert right / len(rows) >= 0.95
    for line in lines:
        assert {"file", "verdict", "cause", "decided_ms", "beep_ms"} <= set(line)


def test_amd_cli_reads_digits(amd_cases):
    result = run_amd(amd_cases / "person-then-keys.wav")
    line = json.loads(result.stdout)
    assert line["verdict"] == "HUMAN"
    assert line["digits"] == "1593"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (wav_bytes(channels=2), "2 channels"),
        (wav_bytes(rate=44100), "44100"),
        (wav_bytes(bits=8, data=b"\x80" * 800), "8-bit PCM; only 16-bit PCM"),
        (wav_bytes(bits=32, data=b"\x00" * 3200), "32-bit PCM; only 16-bit PCM"),
        (wav_bytes(tag=7, bits=16), "16-bit mu-law; only 16-bit PCM, 8-bit mu-law"),
        (wav_bytes(tag=85), "format tag 85"),
        (wav_bytes()[:60], "truncated"),
        (b"not a wav file at all", "not a WAV file"),
        (wav_bytes(data=b""), "contains 0 samples"),
        (wav_bytes(data=b"\x00\x00" * 79), "less than one 10 ms frame (80 samples"),
    ],
)
def test_amd_cli_rejects_bad_file_keeps_good(tmp_path, amd_cases, content, message):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    result = run_amd(bad, amd_cases / "hello-hello.wav")
    assert result.returncode != 0
    assert str(bad) in result.stderr
    assert message in result.stderr
    assert json.loads(result.stdout)["verdict"] == "HUMAN"


@pytest.mark.parametrize(("tag", "encoding"), [(6, "alaw"), (7, "ulaw")])
def test_amd_cli_accepts_g711(tmp_path, tag, encoding):
    path = tmp_path / f"{encoding}.wav"
    path.write_bytes(wav_bytes(tag=tag, bits=8, data=b"\xd5" * 48000))
    result = run_amd(path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verdict"] == "SILENCE"


def streamed_wav(data: bytes) -> bytes:
    """A WAV file as a streaming recorder leaves it: both sizes 0xFFFFFFFF."""
    whole = wav_bytes(data=data)
    data_size_at = whole.index(b"data") + 4
    header = bytearray(whole[:data_size_at] + b"\xff\xff\xff\xff")
    header[4:8] = b"\xff\xff\xff\xff"
    return bytes(header) + data


def test_read_wav_unknown_data_size_reads_to_end(tmp_path):
    path = tmp_path / "streamed.wav"
    # 1000 samples and half of one more: the cut sample is dropped.
    path.write_bytes(streamed_wav(b"\x01\x00" * 1000 + b"\x01"))
    audio = read_wav(path)
    assert len(audio.samples) == 1000
    assert audio.samples[-1] == 1
    assert audio.encoding == "pcm16"


def test_amd_cli_accepts_streamed_wav(tmp_path):
    path = tmp_path / "streamed.wav"
    path.write_bytes(streamed_wav(b"\x00\x00" * 48000))
    result = run_amd(path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verdict"] == "SILENCE"


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_amd_cli_bad_path_one_line(tmp_path, amd_cases, kind):
    bad = tmp_path / "calls"
    if kind == "folder":
        bad.mkdir()
    result = run_amd(bad, amd_cases / "hello-hello.wav")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1
    assert len(lines) == 1
    assert lines[0].startswith(f"callsure amd: {bad}: ")
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)["verdict"] == "HUMAN"
