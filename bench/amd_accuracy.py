"""Accuracy of the call-progress analysis on the labelled corpus.

Runs every corpus file through callsure.dsp and through a plain
reimplementation of Asterisk's app_amd, with VICIdial's settings and with
Asterisk's defaults. app_amd judges each 20 ms frame silent by its mean
absolute amplitude against 256 and counts words of at least min_word_ms
separated by 50 ms of silence. For each detector the script prints the
confusion matrix, connect accuracy, beep hit rate (within 300 ms) and the
median time from the first word to a HUMAN verdict.

With --timing-study it also measures how far rules on pause timing can
go. It cross-validates the HUMAN timing parameters, leaving out one
source at a time (the en, es and it prompt sets, the pocketsphinx
phrases, the tone and music cases). It prints the lowest median latency
that a pause rule reaches without taking a new machine for a person, and
what a provisional HUMAN after a shorter pause gains and costs.

Usage: python bench/amd_accuracy.py [--timing-study] [CORPUS_DIR]
"""

from __future__ import annotations

import csv
import itertools
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from callsure.dsp import AnalysisParams, EventKind, StreamAnalyzer, read_wav

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


def callsure_amd(samples: np.ndarray, rate: int, encoding: str, params=None):
    analyzer = StreamAnalyzer(rate, encoding, params)
    analyzer.feed(samples)
    verdict = analyzer.finish()
    return verdict.kind.name, verdict.decided_ms, verdict.beep_ms


def callsure_first_and_final(samples: np.ndarray, rate: int, encoding: str, params):
    """Return the first verdict (kind, ms) and the final one (kind, ms)."""
    analyzer = StreamAnalyzer(rate, encoding, params)
    analyzer.feed(samples)
    final = analyzer.finish()
    first = next(e for e in analyzer.drain_events() if e.kind is EventKind.VERDICT)
    return (first.verdict.name, first.start_ms), (final.kind.name, final.decided_ms)


def provisional_study(rows: list, audio: dict) -> None:
    """Print what provisional_pause_ms costs and gains, cross-validated.

    The first verdict is what a gateway that acts at once would do, and
    the final one is what it ends with when it also follows the revisions.
    Each fold takes the longest provisional pause whose median time from
    first word to HUMAN on the other folds is at most 1200 ms.
    """
    pauses = [0, 200, 225, 250, 275, 300]
    runs = {}
    for pause in pauses:
        params = AnalysisParams(provisional_pause_ms=pause)
        runs[pause] = [
            callsure_first_and_final(*audio[row["file"]], params) for row in rows
        ]

    def summary(pause, indices):
        """Return (median ms, machines HUMAN first, machines, errors first, final)."""
        machines = [i for i in indices if rows[i]["label"] == "MACHINE"]
        first = [runs[pause][i][0] for i in indices]
        final = [runs[pause][i][1] for i in indices]
        selected = [rows[i] for i in indices]
        return (
            timing_summary(selected, first)[2],
            sum(runs[pause][i][0][0] == "HUMAN" for i in machines),
            len(machines),
            timing_summary(selected, first)[0],
            timing_summary(selected, final)[0],
        )

    def cells(values):
        median_ms, human_first, machines, first_errors, final_errors = values
        return (
            f"{median_ms} | {human_first}/{machines} | {first_errors} | {final_errors}"
        )

    print("\n### Provisional HUMAN (provisional_pause_ms)\n")
    print(
        "| cases | pause ms | median first word to first HUMAN ms | machines whose "
        "first verdict is HUMAN | connect errors, first verdict | connect errors, "
        "final verdict |"
    )
    print("| --- " * 6 + "|")
    everything = list(range(len(rows)))
    for pause in pauses:
        print(f"| all | {pause} | {cells(summary(pause, everything))} |")
    held_out = [None] * len(rows)
    for family in sorted({source_family(row) for row in rows}):
        train = [i for i, row in enumerate(rows) if source_family(row) != family]
        test = [i for i, row in enumerate(rows) if source_family(row) == family]
        fitting = [p for p in pauses if p and summary(p, train)[0] <= 1200]
        chosen = max(fitting, default=min(p for p in pauses if p))
        for i in test:
            held_out[i] = runs[chosen][i]
        print(
            f"| held out: {family} | {chosen} (chosen on the rest) | "
            f"{cells(summary(chosen, test))} |"
        )
    runs["held out"] = held_out
    print(f"| all, pooled | held out | {cells(summary('held out', everything))} |")


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
    latencies = [
        got[1] - int(row["speech_onset_ms"]) for row, got in humans if got[0] == "HUMAN"
    ]
    latency, mean_latency = statistics.median(latencies), statistics.mean(latencies)

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
        f"median first word to HUMAN {latency:.0f} ms (mean {mean_latency:.0f} ms)"
    )


def source_family(row: dict) -> str:
    """Return the prompt set a corpus case was built from (its CV fold)."""
    for tag, family in [("-en-", "en"), ("-es-", "es"), ("-it-", "it")]:
        if tag in row["sources"]:
            return family
    return "pocketsphinx" if "pocketsphinx" in row["sources"] else "tones, music"


def timing_summary(rows: list, results: list) -> tuple:
    """Return (connect errors, persons HUMAN, median ms, mean ms) of results."""
    pairs = list(zip(rows, results, strict=True))
    errors = sum((r["label"] == "HUMAN") != (v[0] == "HUMAN") for r, v in pairs)
    humans = [(r, v) for r, v in pairs if r["label"] == "HUMAN"]
    latencies = [v[1] - int(r["speech_onset_ms"]) for r, v in humans if v[0] == "HUMAN"]
    if not latencies:
        return errors, f"0/{len(humans)}", None, None
    return (
        errors,
        f"{len(latencies)}/{len(humans)}",
        round(statistics.median(latencies)),
        round(statistics.mean(latencies)),
    )


def cross_validate(rows: list, audio: dict) -> None:
    """Leave one source family out: choose the timing on the rest, test on it.

    The choice minimises connect errors, then the mean latency to HUMAN,
    over human_silence_ms, short_greeting_ms and long_pause_ms.
    """
    grid = list(
        itertools.product([450, 500, 550], [1000, 1200, 1400], [800, 1000, 1200])
    )
    verdicts = {}
    for key in grid:
        params = AnalysisParams(
            human_silence_ms=key[0], short_greeting_ms=key[1], long_pause_ms=key[2]
        )
        verdicts[key] = [callsure_amd(*audio[row["file"]], params) for row in rows]

    print("\n### Leave-one-source-out cross-validation of the HUMAN timing\n")
    print(
        "| held out | cases | chosen (silence, short, long ms) | connect errors "
        "| persons HUMAN | median ms | mean ms |"
    )
    print("| --- " * 7 + "|")
    held_out = [None] * len(rows)
    for held in sorted({source_family(row) for row in rows}):
        train = [i for i, row in enumerate(rows) if source_family(row) != held]
        test = [i for i, row in enumerate(rows) if source_family(row) == held]

        def train_score(key, train=train):
            errors, _, _, mean_ms = timing_summary(
                [rows[i] for i in train], [verdicts[key][i] for i in train]
            )
            return errors, mean_ms or 0

        chosen = min(grid, key=train_score)
        for i in test:
            held_out[i] = verdicts[chosen][i]
        cells = timing_summary([rows[i] for i in test], [held_out[i] for i in test])
        print(
            f"| {held} | {len(test)} | {chosen} | " + " | ".join(map(str, cells)) + " |"
        )
    cells = timing_summary(rows, held_out)
    print("| all, pooled | " + f"{len(rows)} | | " + " | ".join(map(str, cells)) + " |")


def speech_blocks(samples: np.ndarray, rate: int, encoding: str) -> np.ndarray:
    """Return the kernel's per-10 ms speech decisions for one recording.

    Every run of speech blocks becomes a word with these parameters, so
    the SPEECH_END events cover exactly the blocks judged speech.
    """
    params = AnalysisParams(human_silence_ms=10, min_word_ms=10)
    analyzer = StreamAnalyzer(rate, encoding, params)
    speech = np.zeros(len(samples) * 8000 // rate // 80 + 1, dtype=bool)
    for start in range(0, len(samples), rate // 10):
        analyzer.feed(samples[start : start + rate // 10])
        for event in analyzer.drain_events():
            if event.kind is EventKind.SPEECH_END:
                first = event.start_ms // 10
                speech[first : first + event.duration_ms // 10] = True
    analyzer.finish()
    for event in analyzer.drain_events():
        if event.kind is EventKind.SPEECH_END:
            first = event.start_ms // 10
            speech[first : first + event.duration_ms // 10] = True
    return speech


def replay_pauses(speech: np.ndarray, machine_block: int):
    """Yield (block, greeting_ms, pause_ms, speech_share) as track_speech has them.

    Follows track_speech with min_word_ms = 60, up to the block at which
    the call is a MACHINE anyway (beep or a 2.5 s greeting). speech_share
    is the share of the greeting's blocks, first to last word, that are
    speech.
    """
    speech_run = silence_run = speech_count = 0
    onset = last_speech = -1
    for block, is_speech in enumerate(speech[:machine_block]):
        if is_speech:
            speech_run, silence_run = speech_run + 1, 0
            if speech_run >= 6 or onset >= 0:
                if onset < 0:
                    onset = block - speech_run + 1
                    speech_count = speech_run - 1
                last_speech = block
                speech_count += 1
        else:
            speech_run, silence_run = 0, silence_run + 1
        if onset >= 0:
            greeting_blocks = last_speech - onset + 1
            if greeting_blocks * 10 >= 2500:
                return
            yield (
                block,
                greeting_blocks * 10,
                silence_run * 10,
                speech_count / greeting_blocks,
            )


def pause_tracks(rows: list, audio: dict, verdicts: list) -> list:
    """Return (row, replay_pauses steps) for every person and machine."""
    tracks = []
    for row, verdict in zip(rows, verdicts, strict=True):
        if row["label"] not in ("HUMAN", "MACHINE"):
            continue
        machine_ms = verdict[1] if verdict[0] == "MACHINE" else 10**9
        if verdict[2] is not None:
            machine_ms = min(machine_ms, verdict[2] + 80)
        speech = speech_blocks(*audio[row["file"]])
        tracks.append((row, list(replay_pauses(speech, machine_ms // 10))))
    return tracks


def timing_bounds(tracks: list) -> None:
    """Print the lowest HUMAN latency a pause rule with a final verdict reaches."""
    # The maximum pause of any machine at each greeting length (10 ms steps).
    longest = defaultdict(int)
    for row, steps in tracks:
        if row["label"] == "MACHINE":
            for _, greeting_ms, pause_ms, _ in steps:
                longest[greeting_ms] = max(longest[greeting_ms], pause_ms)

    defaults = AnalysisParams()

    def deployed(greeting_ms, pause_ms, speech_share):
        # The default rule: the pause required rises from human_silence_ms
        # at short_greeting_ms to long_pause_ms at max_greeting_ms, and a
        # compact greeting needs only compact_pause_ms.
        share = (greeting_ms - defaults.short_greeting_ms) / (
            defaults.max_greeting_ms - defaults.short_greeting_ms
        )
        required = defaults.human_silence_ms + max(share, 0.0) * (
            defaults.long_pause_ms - defaults.human_silence_ms
        )
        if (
            greeting_ms <= defaults.compact_greeting_ms
            and speech_share >= defaults.compact_speech_share
        ):
            required = min(required, defaults.compact_pause_ms)
        return pause_ms >= required

    def oracle(greeting_ms, pause_ms):
        near = range(greeting_ms - 100, greeting_ms + 101, 10)
        return pause_ms > max(longest[g] for g in near)

    print("\n### Limits of pause timing\n")
    rules = [
        ("the default rule", deployed),
        (
            "oracle: the default rule, or a pause longer than every machine's "
            "pause at a greeting within 100 ms of this one",
            lambda g, p, s: deployed(g, p, s) or oracle(g, p),
        ),
    ]
    for name, rule in rules:
        latencies, machines = [], 0
        for row, steps in tracks:
            decided = next((b for b, g, p, s in steps if rule(g, p, s)), None)
            if decided is None:
                continue
            if row["label"] == "HUMAN":
                latencies.append((decided + 1) * 10 - int(row["speech_onset_ms"]))
            else:
                machines += 1
        persons = sum(row["label"] == "HUMAN" for row, _ in tracks)
        print(
            f"- {name}: persons HUMAN {len(latencies)}/{persons}, median first word "
            f"to HUMAN {statistics.median(latencies):.0f} ms, machines taken for "
            f"persons {machines}/{len(tracks) - persons}"
        )


def speech_share_study(tracks: list) -> None:
    """Print the speech share of greetings where the compact rule could fire.

    For persons, at their first pause of compact_pause_ms after at most
    compact_greeting_ms of greeting; for machines, at every such pause
    before they are found to be machines.
    """
    defaults = AnalysisParams()
    persons, machines = [], []
    for row, steps in tracks:
        shares = [
            (s, row["file"])
            for _, g, p, s in steps
            if p == defaults.compact_pause_ms and g <= defaults.compact_greeting_ms
        ]
        if row["label"] == "HUMAN":
            persons += shares[:1]
        else:
            machines += shares
    values = np.array([s for s, _ in persons])
    print("\n### Speech share of greetings at a compact pause\n")
    print(
        f"At a pause of {defaults.compact_pause_ms:.0f} ms after at most "
        f"{defaults.compact_greeting_ms:.0f} ms of greeting: {len(persons)} persons "
        "(their first such pause), speech share "
        + ", ".join(
            f"{name} {np.percentile(values, q):.2f}"
            for name, q in [("minimum", 0), ("5th percentile", 5), ("median", 50)]
        )
    )
    print(
        f"{len(machines)} such pauses of machines, speech shares (highest first): "
        + ", ".join(f"{s:.2f} ({name})" for s, name in sorted(machines, reverse=True))
    )


def compact_study(rows: list, audio: dict) -> None:
    """Print the compact-greeting rule over a grid, and cross-validate it.

    Folds: even-numbered files against odd ones both ways, and one source
    family left out at a time. Each fold takes, on its training files, the
    fewest connect errors, then the lowest median first word to HUMAN,
    and on ties the safer values (longer pause, higher share, shorter
    greeting).
    """
    grid = list(
        itertools.product(
            [200, 225, 250, 275, 300],
            [800, 900, 1000, 1100, 1200],
            [0, 0.65, 0.72, 0.8],
        )
    )
    verdicts = {}
    for key in grid:
        params = AnalysisParams(
            compact_pause_ms=key[0],
            compact_greeting_ms=key[1],
            compact_speech_share=key[2],
        )
        verdicts[key] = [callsure_amd(*audio[row["file"]], params) for row in rows]

    def summary(key, indices):
        return timing_summary(
            [rows[i] for i in indices], [verdicts[key][i] for i in indices]
        )

    def rank(key, indices):
        errors, _, median_ms, _ = summary(key, indices)
        return errors, median_ms or 0, -key[0], -key[2], key[1]

    everything = list(range(len(rows)))
    print("\n### Compact greeting rule (pause, greeting, speech share)\n")
    print(
        "| pause ms | greeting ms | speech share | connect errors | persons HUMAN "
        "| median ms | mean ms |"
    )
    print("| --- " * 7 + "|")
    for key in grid:
        if key[1] in (900, 1000, 1100) and key[2] in (0, 0.72):
            cells = " | ".join(map(str, summary(key, everything)))
            print(f"| {key[0]} | {key[1]} | {key[2]} | {cells} |")

    number = [int(row["file"].split("-")[1].split(".")[0]) for row in rows]
    even = [i for i in everything if number[i] % 2 == 0]
    odd = [i for i in everything if number[i] % 2 == 1]
    folds = [("even", even, odd), ("odd", odd, even)]
    for held in sorted({source_family(row) for row in rows}):
        train = [i for i in everything if source_family(rows[i]) != held]
        test = [i for i in everything if source_family(rows[i]) == held]
        folds.append((f"all but {held}", train, test))
    print("\n#### Cross-validation of the compact greeting rule\n")
    print(
        "| tuned on | tested on | chosen (pause, greeting, share) | connect errors "
        "| persons HUMAN | median ms | mean ms |"
    )
    print("| --- " * 7 + "|")
    held_out = [None] * len(rows)
    for name, train, test in folds:
        chosen = min(grid, key=lambda key, train=train: rank(key, train))
        tested_on = {"even": "odd", "odd": "even"}.get(name, name[len("all but ") :])
        cells = " | ".join(map(str, summary(chosen, test)))
        print(f"| {name} | {tested_on} | {chosen} | {cells} |")
        if name in ("even", "odd"):
            for i in test:
                held_out[i] = verdicts[chosen][i]
    cells = " | ".join(map(str, timing_summary(rows, held_out)))
    print(f"| even, odd | both, pooled | | {cells} |")


def main() -> None:
    arguments = [a for a in sys.argv[1:] if a != "--timing-study"]
    corpus = (
        Path(arguments[0])
        if arguments
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
    if "--timing-study" in sys.argv[1:]:
        audio = {}
        for row in rows:
            wav = read_wav(corpus / row["file"])
            audio[row["file"]] = (wav.samples, wav.sample_rate_hz, wav.encoding)
        cross_validate(rows, audio)
        tracks = pause_tracks(rows, audio, ours)
        timing_bounds(tracks)
        speech_share_study(tracks)
        compact_study(rows, audio)
        provisional_study(rows, audio)


if __name__ == "__main__":
    main()
