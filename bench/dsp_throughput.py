"""Throughput of the call-progress pipeline through the batch API.

Models a media gateway: every 20 ms tick it hands one frame of each of N
concurrent calls (8 kHz mu-law) to one BatchAnalyzer.process call on one
core. The audio is corpus recordings (speech, music, tones, silence)
cycled across the streams with random offsets, so the gated tone bank
runs as often as on real traffic. The reference is py-webrtcvad, one
Python call per 20 ms frame, measured in the same run.

Rates are frames per second of this process's CPU time (time.process_time),
so other jobs on a shared machine do not count against it, best of
--repeat runs (they still slow it through shared caches); wall-clock
rates of the same run are printed beside them.

Usage: python bench/dsp_throughput.py [--seconds S] [--repeat N] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import webrtcvad

from callsure.dsp import BatchAnalyzer, read_wav


def corpus_audio(corpus: Path, count: int = 40) -> np.ndarray:
    files = sorted(corpus.glob("dev-*.wav"))[:count]
    return np.concatenate([read_wav(f).samples for f in files])


def to_ulaw(samples: np.ndarray) -> np.ndarray:
    """Encode int16 to mu-law codes (G.711) with numpy, for the input."""
    x = samples.astype(np.int32)
    sign = np.where(x < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ((sign ^ ((exponent << 4) | mantissa)) & 0xFF).astype(np.uint8)


def bench_batch(codes: np.ndarray, streams: int, seconds: float) -> tuple[float, float]:
    batch = BatchAnalyzer(streams, 8000, 20, "ulaw")
    for _ in range(streams):
        batch.open()
    rng = np.random.default_rng(1)
    offsets = rng.integers(0, len(codes) - 160 * 600, streams)
    ticks = max(1, int(seconds * 50))
    frames = np.empty((ticks, streams, 160), dtype=np.uint8)
    for tick in range(ticks):
        index = offsets[:, None] + tick * 160 + np.arange(160)[None, :]
        frames[tick] = codes[index]
    cpu, wall = time.process_time(), time.perf_counter()
    for tick in range(ticks):
        batch.process(frames[tick])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return ticks * streams / cpu, ticks * streams / wall


def bench_webrtcvad(pcm: np.ndarray, frames: int) -> tuple[float, float]:
    vad = webrtcvad.Vad(2)
    pcm = np.resize(pcm, frames * 160)
    data = [pcm[i * 160 : (i + 1) * 160].tobytes() for i in range(frames)]
    cpu, wall = time.process_time(), time.perf_counter()
    for frame in data:
        vad.is_speech(frame, 8000)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return frames / cpu, frames / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=4.0, help="audio per stream, s"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best counts")
    parser.add_argument(
        "--corpus",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared" / "corpus" / "amd",
        help="folder of corpus WAV files used as input audio",
    )
    args = parser.parse_args()
    pcm = corpus_audio(args.corpus)
    codes = to_ulaw(pcm)
    print("| what | streams | frames/s (CPU time) | frames/s (wall clock) |")
    print("| --- | --- | --- | --- |")
    for streams in (1000, 10000):
        cpu, wall = max(
            bench_batch(codes, streams, args.seconds) for _ in range(args.repeat)
        )
        print(
            f"| BatchAnalyzer.process, mu-law | {streams} | {cpu / 1e6:.2f} M "
            f"| {wall / 1e6:.2f} M |"
        )
    cpu, wall = max(bench_webrtcvad(pcm, 100_000) for _ in range(args.repeat))
    print(
        f"| py-webrtcvad is_speech, one call per frame | 1 | {cpu / 1e6:.2f} M "
        f"| {wall / 1e6:.2f} M |"
    )


if __name__ == "__main__":
    main()
