"""Accuracy of the call-progress analysis on the labelled corpus.

Runs every corpus file through callsure.dsp and through a plain
reimplementation of Asterisk's app_amd (20 ms frames judged silent by mean
absolute amplitude against 256, words of at least min_word_ms separated by
50 ms of silence) with VICIdial's settings, and prints the confusion
matrix, connect accuracy, beep hit rate (within 300 ms) and median time
from the first word to a HUMAN verdict for both.

Usage: python bench/amd_accuracy.py [CORPUS_DIR]
"""

from __future__ import annotations

import csv
import statistics
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from callsure.dsp import StreamAnalyzer, read_wav

LABELS = ["HUMAN", "MACHINE", "NOTSURE", "SILENCE", "SIT", "FAX"]

# VICIdial's advice for app_amd (ms, except the word count).
VICIDIAL = {
    "initial_silence": 2000,
    "greeting": 2000,
    "after_greeting_silence": 1000,
    "total_analysis": 5000,
    "min_word": 120,
    "between_words_silence": 50,
    "max_words": 4,
    "silence_threshold": 256,
}


def asterisk_amd(samples: np.ndarray, settings=VICIDIAL):
    """Return (verdict, decided_ms) the way app_amd decides, frame by frame."""
    frame = 160
    silence_ms = voice_ms = 0
    words = 0
    in_word = False
    greeting_started = False
    for index in range(len(samples) // frame):
        now_ms = (index + 1) * 20
        if now_ms > settings["total_analysis"]:
            return "NOTSURE", now_ms
        chunk = samples[index * frame : (index + 1) * frame].astype(np.int32)
        if np.abs(chunk).mean() < settings["silence_threshold"]:
            silence_ms += 20
            voice_ms = 0
            if silence_ms >= settings["between_words_silence"]:
                in_word = False
            if not greeting_started and silence_ms >= settings["initial_silence"]:
                return "MACHINE", now_ms
            if greeting_started and silence_ms >= settings["after_greeting_silence"]:
                return "HUMAN", now_ms
        else:
            voice_ms += 20
            silence_ms = 0
            if voice_ms >= settings["min_word"] and not in_word:
                in_word = True
                greeting_started = True
                words += 1
                if words >= settings["max_words"]:
                    return "MACHINE", now_ms
            if greeting_started and voice_ms >= settings["greeting"]:
                return "MACHINE", now_ms
    return "NOTSURE", len(samples) // 8


def callsure_amd(samples: np.ndarray, rate: int, encoding: str):
    analyzer = StreamAnalyzer(rate, encoding)
    analyzer.feed(samples)
    verdict = analyzer.finish()
    return verdict.kind.name, verdict.decided_ms, verdict.beep_ms


def report(name: str, rows: list, results: list) -> None:
    confusion = Counter(
        (row["label"], got[0]) for row, got in zip(rows, results, strict=False)
    )
    total = len(rows)
    exact = (
        sum(row["label"] == got[0] for row, got in zip(rows, results, strict=False))
        / total
    )
    connect = (
        sum(
            (row["label"] == "HUMAN") == (got[0] == "HUMAN")
            for row, got in zip(rows, results, strict=False)
        )
        / total
    )
    humans = [
        (row, got)
        for row, got in zip(rows, results, strict=False)
        if row["label"] == "HUMAN"
    ]
    human_rate = sum(got[0] == "HUMAN" for _, got in humans) / len(humans)
    latency = statistics.median(
        got[1] - int(row["speech_onset_ms"]) for row, got in humans if got[0] == "HUMAN"
    )
    beeps = [
        (row, got)
        for row, got in zip(rows, results, strict=False)
        if row["beep_onset_ms"]
    ]
    hits = sum(
        got[2] is not None and abs(got[2] - int(row["beep_onset_ms"])) <= 300
        for row, got in beeps
    )
    print(f"\n### {name}\n")
    print("| label \\ verdict | " + " | ".join(LABELS) + " |")
    print("| --- " * (len(LABELS) + 1) + "|")
    for label in ["HUMAN", "MACHINE", "SILENCE", "SIT", "FAX"]:
        cells = " | ".join(str(confusion.get((label, got), 0)) for got in LABELS)
        print(f"| {label} | {cells} |")
    print(
        f"\nexact {exact:.1%}, connect decision {connect:.1%}, persons HUMAN "
        f"{human_rate:.1%}, beeps found {hits}/{len(beeps)} ({hits / len(beeps):.1%}), "
        f"median first word to HUMAN {latency:.0f} ms"
    )


def main() -> None:
    corpus = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else (Path(__file__).resolve().parents[2] / "shared" / "corpus" / "amd")
    )
    rows = list(csv.DictReader(open(corpus / "labels.csv", newline="")))
    ours, theirs = [], []
    for row in rows:
        audio = read_wav(corpus / row["file"])
        ours.append(callsure_amd(audio.samples, audio.sample_rate_hz, audio.encoding))
        verdict, decided_ms = asterisk_amd(audio.samples)
        theirs.append((verdict, decided_ms, None))
    report("callsure.dsp (defaults)", rows, ours)
    report("app_amd reimplementation, VICIdial settings", rows, theirs)


if __name__ == "__main__":
    main()
