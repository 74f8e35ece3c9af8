"""Accuracy of the call-progress analysis on the labelled corpus.

Runs every corpus file through callsure.dsp and through a plain
reimplementation of Asterisk's app_amd, with VICIdial's settings and with
Asterisk's defaults. app_amd judges each 20 ms frame silent by its mean
absolute amplitude against 256 and counts words of at least min_word_ms
separated by 50 ms of silence. For each detector the script prints the
confusion matrix, connect accuracy, beep hit rate (within 300 ms) and the
median time from the first word to a HUMAN verdict.

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

# app_amd's settings (ms, except the word count and the threshold, a mean
# absolute amplitude): Asterisk's defaults and VICIdial's advice.
ASTERISK_DEFAULTS = {
    "initial_silence": 2500,
    "greeting": 1500,
    "after_greeting_silence": 800,
    "total_analysis": 5000,
    "min_word": 100,
    "between_words_silence": 50,
    "max_words": 2,
    "max_word_length": 5000,
    "silence_threshold": 256,
}
VICIDIAL = {
    **ASTERISK_DEFAULTS,
    "initial_silence": 2000,
    "greeting": 2000,
    "after_greeting_silence": 1000,
    "min_word": 120,
    "max_words": 4,
}


def asterisk_amd(samples: np.ndarray, settings: dict) -> tuple[str, int]:
    """Return (verdict, decided_ms) as app_amd's isAnsweringMachine decides.

    Follows apps/app_amd.c of Asterisk's repository frame by frame. A 20 ms
    frame is silent when its mean absolute amplitude is below the threshold
    (ast_dsp_silence). The voice time that ends the greeting is the total
    since the start, not a consecutive run.
    """
    in_initial_silence, in_greeting, in_word = True, False, True
    voice_ms = silence_ms = total_ms = words = consecutive_voice_ms = 0
    dsp_silence_ms = 0
    for index in range(len(samples) // 160):
        frame = samples[index * 160 : (index + 1) * 160].astype(np.int32)
        total_ms += 20
        if total_ms >= settings["total_analysis"]:
            return "NOTSURE", total_ms
        if np.abs(frame).mean() < settings["silence_threshold"]:
            dsp_silence_ms += 20
        else:
            dsp_silence_ms = 0
        if dsp_silence_ms > 0:
            silence_ms = dsp_silence_ms
            if silence_ms >= settings["between_words_silence"]:
                in_word = False
                consecutive_voice_ms = 0
            if in_initial_silence and silence_ms >= settings["initial_silence"]:
                return "MACHINE", total_ms
            if in_greeting and silence_ms >= settings["after_greeting_silence"]:
                return "HUMAN", total_ms
            continue
        consecutive_voice_ms += 20
        voice_ms += 20
        if consecutive_voice_ms >= settings["min_word"] and not in_word:
            words += 1
            in_word = True
        if consecutive_voice_ms >= settings["max_word_length"]:
            return "MACHINE", total_ms
        if words >= settings["max_words"]:
            return "MACHINE", total_ms
        if in_greeting and voice_ms >= settings["greeting"]:
            return "MACHINE", total_ms
        if voice_ms >= settings["min_word"]:
            silence_ms = 0
        if consecutive_voice_ms >= settings["min_word"] and not in_greeting:
            in_initial_silence, in_greeting = False, True
    return "NOTSURE", total_ms


def callsure_amd(samples: np.ndarray, rate: int, encoding: str):
    analyzer = StreamAnalyzer(rate, encoding)
    analyzer.feed(samples)
    verdict = analyzer.finish()
    return verdict.kind.name, verdict.decided_ms, verdict.beep_ms


def report(name: str, rows: list, results: list) -> None:
    """Print the confusion matrix and the summary metrics of one detector."""
    pairs = list(zip(rows, results, strict=True))
    confusion = Counter((row["label"], got[0]) for row, got in pairs)
    exact = sum(row["label"] == got[0] for row, got in pairs) / len(pairs)
    connect = sum(
        (row["label"] == "HUMAN") == (got[0] == "HUMAN") for row, got in pairs
    ) / len(pairs)

    humans = [(row, got) for row, got in pairs if row["label"] == "HUMAN"]
    human_rate = sum(got[0] == "HUMAN" for _, got in humans) / len(humans)
    latency = statistics.median(
        got[1] - int(row["speech_onset_ms"]) for row, got in humans if got[0] == "HUMAN"
    )

    beeps = [(row, got) for row, got in pairs if row["beep_onset_ms"]]
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
    ours, vicidial, defaults = [], [], []
    for row in rows:
        audio = read_wav(corpus / row["file"])
        ours.append(callsure_amd(audio.samples, audio.sample_rate_hz, audio.encoding))
        vicidial.append((*asterisk_amd(audio.samples, VICIDIAL), None))
        defaults.append((*asterisk_amd(audio.samples, ASTERISK_DEFAULTS), None))
    report("callsure.dsp (defaults)", rows, ours)
    report("app_amd reimplementation, VICIdial settings", rows, vicidial)
    report("app_amd reimplementation, Asterisk defaults", rows, defaults)


if __name__ == "__main__":
    main()
