"""Accuracy of the call-progress analysis on the labelled corpus and cases.

These assert accuracy, not speed. Targets the detector does not reach yet
are kept as strict xfails beside guards at the level it reaches now.
"""

from __future__ import annotations

import csv
import statistics

import numpy as np
import pytest

from callsure.dsp import (
    AnalysisParams,
    Cause,
    EventKind,
    StreamAnalyzer,
    VerdictKind,
    read_wav,
)

pytestmark = pytest.mark.slow


def analyse(path):
    audio = read_wav(path)
    analyzer = StreamAnalyzer(audio.sample_rate_hz, audio.encoding)
    digits = []
    for start in range(0, len(audio.samples), 8000):
        analyzer.feed(audio.samples[start : start + 8000])
        digits += [e.digit for e in analyzer.drain_events() if e.kind is EventKind.DTMF]
    verdict = analyzer.finish()
    return verdict, "".join(digits)


@pytest.fixture(scope="module")
def corpus_results(amd_corpus):
    rows = list(csv.DictReader(open(amd_corpus / "labels.csv", newline="")))
    return [(row, *analyse(amd_corpus / row["file"])) for row in rows]


def metrics(results):
    results = [(row, verdict) for row, verdict, _ in results]
    total = len(results)
    exact = sum(v.kind.name == r["label"] for r, v in results) / total
    connect = (
        sum((v.kind.name == "HUMAN") == (r["label"] == "HUMAN") for r, v in results)
        / total
    )
    humans = [(r, v) for r, v in results if r["label"] == "HUMAN"]
    human_rate = sum(v.kind.name == "HUMAN" for _, v in humans) / len(humans)
    latencies = [
        v.decided_ms - int(r["speech_onset_ms"])
        for r, v in humans
        if v.kind.name == "HUMAN"
    ]
    beeps = [(r, v) for r, v in results if r["beep_onset_ms"]]
    beep_rate = sum(
        v.beep_ms is not None and abs(v.beep_ms - int(r["beep_onset_ms"])) <= 300
        for r, v in beeps
    ) / len(beeps)
    return {
        "exact": exact,
        "connect": connect,
        "human": human_rate,
        "beep": beep_rate,
        "latency": statistics.median(latencies),
        "mean_latency": statistics.mean(latencies),
    }


def test_corpus_speech_and_music_give_no_digits(corpus_results):
    # Talk-off: 240 recordings of speech, music and tones, none with DTMF.
    keyed = [(row["file"], digits) for row, _, digits in corpus_results if digits]
    assert keyed == []


def test_corpus_exact_label_target(corpus_results):
    assert metrics(corpus_results)["exact"] >= 0.95


def test_corpus_guards_current_accuracy(corpus_results):
    # Regression guards at the level measured when the detector was tuned.
    m = metrics(corpus_results)
    # Compact greetings need a 250 ms pause, others 500 ms or more (the
    # mean was 1.69 s with 500 ms for every greeting up to 1.2 s). The
    # person whose only sound is a beep gets HUMAN (LONE_SOUND) 4.2 s
    # after it, at silence_timeout_ms, which adds 40 ms to the mean.
    assert m["mean_latency"] <= 1550


def test_corpus_connect_target(corpus_results):
    assert metrics(corpus_results)["connect"] >= 0.99


def test_corpus_human_target(corpus_results):
    assert metrics(corpus_results)["human"] >= 0.99


def test_corpus_beep_target(corpus_results):
    assert metrics(corpus_results)["beep"] >= 0.95


def test_corpus_human_latency_target(corpus_results):
    assert metrics(corpus_results)["latency"] <= 1200


@pytest.mark.parametrize("words", [1, 3, 4])
def test_pause_for_human_rises_with_greeting(amd_corpus, words):
    # One recorded word repeated with 200 ms gaps, then line noise: the
    # pause that makes it HUMAN is human_silence_ms up to a greeting of
    # short_greeting_ms, then rises linearly to long_pause_ms.
    samples = read_wav(amd_corpus / "dev-0031.wav").samples
    word, noise = samples[3600:6800], samples[16000:56000]
    parts = [noise[:4000]]
    for _ in range(words):
        parts += [word, noise[:1600]]
    # Without the compact greeting rule, which would take the single word.
    analyzer = StreamAnalyzer(params=AnalysisParams(compact_pause_ms=0))
    analyzer.feed(np.concatenate(parts + [noise]))
    verdict = analyzer.finish()
    speech = [e for e in analyzer.drain_events() if e.kind is EventKind.SPEECH_END]
    greeting_ms = speech[0].duration_ms
    defaults = AnalysisParams()
    share = max(0.0, greeting_ms - defaults.short_greeting_ms) / (
        defaults.max_greeting_ms - defaults.short_greeting_ms
    )
    required_ms = defaults.human_silence_ms + share * (
        defaults.long_pause_ms - defaults.human_silence_ms
    )
    pause_ms = verdict.decided_ms - (speech[0].start_ms + speech[0].duration_ms)

    assert len(speech) == 1
    assert verdict.kind.name == "HUMAN"
    assert required_ms <= pause_ms <= required_ms + 20


def greeting_pause(parts, params=None):
    """Return the verdict and the pause (ms) from the first utterance's end to it."""
    analyzer = StreamAnalyzer(params=params)
    analyzer.feed(np.concatenate(parts))
    verdict = analyzer.finish()
    speech = [e for e in analyzer.drain_events() if e.kind is EventKind.SPEECH_END]
    return verdict, verdict.decided_ms - (speech[0].start_ms + speech[0].duration_ms)


def test_compact_greeting_needs_short_pause(amd_corpus):
    # One 340 ms word, then line noise: a compact greeting.
    samples = read_wav(amd_corpus / "dev-0031.wav").samples
    word, noise = samples[3600:6800], samples[16000:56000]
    defaults = AnalysisParams()

    verdict, pause_ms = greeting_pause([noise[:4000], word, noise])

    assert verdict.kind is VerdictKind.HUMAN
    assert verdict.cause is Cause.SHORT_GREETING
    assert defaults.compact_pause_ms <= pause_ms <= defaults.compact_pause_ms + 20


def test_compact_greeting_rule_can_be_turned_off(amd_corpus):
    samples = read_wav(amd_corpus / "dev-0031.wav").samples
    word, noise = samples[3600:6800], samples[16000:56000]
    defaults = AnalysisParams()

    verdict, pause_ms = greeting_pause(
        [noise[:4000], word, noise], AnalysisParams(compact_pause_ms=0)
    )

    assert verdict.kind is VerdictKind.HUMAN
    assert defaults.human_silence_ms <= pause_ms <= defaults.human_silence_ms + 20


def test_gappy_greeting_needs_usual_pause(amd_corpus):
    # Two 200 ms pieces of a word 200 ms apart: speech fills 67 % of the
    # 600 ms greeting, below compact_speech_share, as when a machine reads
    # out digits one by one.
    samples = read_wav(amd_corpus / "dev-0031.wav").samples
    piece, noise = samples[3760:5360], samples[16000:56000]
    defaults = AnalysisParams()

    verdict, pause_ms = greeting_pause(
        [noise[:4000], piece, noise[:1600], piece, noise]
    )

    assert verdict.kind is VerdictKind.HUMAN
    assert defaults.human_silence_ms <= pause_ms <= defaults.human_silence_ms + 20


def test_long_greeting_needs_usual_pause(amd_corpus):
    # The same pieces 200 ms apart, but compact_greeting_ms set below the
    # greeting's 600 ms and the speech share required lowered to 0.
    samples = read_wav(amd_corpus / "dev-0031.wav").samples
    piece, noise = samples[3760:5360], samples[16000:56000]
    params = AnalysisParams(compact_greeting_ms=500, compact_speech_share=0)

    verdict, pause_ms = greeting_pause(
        [noise[:4000], piece, noise[:1600], piece, noise], params
    )

    assert verdict.kind is VerdictKind.HUMAN
    assert params.human_silence_ms <= pause_ms <= params.human_silence_ms + 20


def verdict_events(analyzer):
    return [e for e in analyzer.drain_events() if e.kind is EventKind.VERDICT]


@pytest.fixture(scope="module")
def provisional_results(amd_corpus):
    # Shorter than compact_pause_ms, so compact greetings get it too.
    params = AnalysisParams(provisional_pause_ms=200)
    rows = list(csv.DictReader(open(amd_corpus / "labels.csv", newline="")))
    results = []
    for row in rows:
        audio = read_wav(amd_corpus / row["file"])
        analyzer = StreamAnalyzer(audio.sample_rate_hz, audio.encoding, params)
        analyzer.feed(audio.samples)
        verdict = analyzer.finish()
        results.append((row, verdict, verdict_events(analyzer)))
    return results


def test_provisional_mode_keeps_final_verdicts(corpus_results, provisional_results):
    default = {row["file"]: verdict.kind for row, verdict, _ in corpus_results}
    changed = [
        row["file"]
        for row, verdict, _ in provisional_results
        if verdict.kind is not default[row["file"]]
    ]
    assert changed == []


def test_provisional_human_is_always_resolved(provisional_results):
    unresolved, revised = [], 0
    for row, verdict, events in provisional_results:
        if events[0].cause is not Cause.SHORT_PAUSE:
            continue
        if verdict.provisional or len(events) < 2:
            unresolved.append(row["file"])
        revised += verdict.kind is VerdictKind.MACHINE
    assert unresolved == []
    assert revised > 0


def test_provisional_mode_first_human_sooner(corpus_results, provisional_results):
    onsets = {
        row["file"]: int(row["speech_onset_ms"] or 0) for row, _, _ in corpus_results
    }
    first_human = [
        events[0].start_ms - onsets[row["file"]]
        for row, _, events in provisional_results
        if row["label"] == "HUMAN" and events[0].verdict is VerdictKind.HUMAN
    ]
    assert len(first_human) == 77
    assert statistics.median(first_human) < metrics(corpus_results)["latency"]
    assert statistics.median(first_human) <= 1200


def test_provisional_human_streamed_then_confirmed(amd_corpus):
    samples = read_wav(amd_corpus / "dev-0031.wav").samples
    word, noise = samples[3600:6800], samples[16000:56000]
    stream = np.concatenate([noise[:4000], word, noise])
    analyzer = StreamAnalyzer(params=AnalysisParams(provisional_pause_ms=150))
    # The word ends near 860 ms: the pause is 150 ms long at 1010 ms and
    # compact_pause_ms (250 ms) long at 1110 ms.
    analyzer.feed(stream[: 8 * 1060])
    early = analyzer.verdict
    analyzer.feed(stream[8 * 1060 :])
    final = analyzer.finish()

    assert early.kind is VerdictKind.HUMAN
    assert early.provisional
    assert final.kind is VerdictKind.HUMAN
    assert final.cause is Cause.SHORT_GREETING
    assert final.decided_ms > early.decided_ms


def test_provisional_human_revised_by_long_greeting(amd_corpus):
    person = read_wav(amd_corpus / "dev-0031.wav").samples
    # A word, 200 ms of line noise (shorter than compact_pause_ms), then a
    # 3.7 s prompt spoken without a pause of 250 ms.
    greeting = read_wav(amd_corpus / "dev-0056.wav").samples[3600:33600]
    stream = np.concatenate([person[:3600], person[3600:6800], person[16000:17600]])
    stream = np.concatenate([stream, greeting, person[16000:56000]])
    analyzer = StreamAnalyzer(params=AnalysisParams(provisional_pause_ms=150))
    analyzer.feed(stream)
    final = analyzer.finish()
    events = verdict_events(analyzer)

    assert [e.cause for e in events] == [Cause.SHORT_PAUSE, Cause.LONG_GREETING]
    assert final.kind is VerdictKind.MACHINE


def test_corpus_at_sixteen_khz(amd_corpus):
    # The same recordings resampled to 16 kHz: the half-band decimator
    # must keep the verdicts.
    from scipy.signal import resample_poly

    rows = list(csv.DictReader(open(amd_corpus / "labels.csv", newline="")))
    right = 0
    for row in rows:
        narrow = read_wav(amd_corpus / row["file"]).samples.astype(float)
        wide = np.clip(resample_poly(narrow, 2, 1), -32768, 32767).astype(np.int16)
        analyzer = StreamAnalyzer(16000)
        analyzer.feed(wide)
        right += analyzer.finish().kind.name == row["label"]
    assert right / len(rows) >= 0.97


def case_rows(amd_cases):
    return list(csv.DictReader(open(amd_cases / "cases.csv", newline="")))


@pytest.mark.parametrize(
    "name",
    [
        "ringback-then-person",
        "late-beep",
        "faint-beep",
        "no-audio",
        "line-noise",
        "music-then-greeting",
        "siren",
        "digits-announcement",
        "person-then-keys",
        "hello-hello",
    ],
)
def test_amd_case(amd_cases, name):
    row = next(r for r in case_rows(amd_cases) if r["file"] == f"{name}.wav")
    verdict, digits = analyse(amd_cases / row["file"])
    if row["expect_verdict"]:
        assert verdict.kind.name == row["expect_verdict"]
    if row["expect_not_verdict"]:
        assert verdict.kind.name != row["expect_not_verdict"]
    if row["expect_beep_ms"] == "none":
        assert verdict.beep_ms is None
    else:
        assert verdict.beep_ms is not None
        assert abs(verdict.beep_ms - int(row["expect_beep_ms"])) <= 300
    assert digits == row["expect_digits"]


def test_no_audio_cause_is_documented(amd_cases):
    verdict, _ = analyse(amd_cases / "no-audio.wav")
    assert verdict.cause.name == "NO_AUDIO"
