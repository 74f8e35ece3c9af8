"""Tone detectors on synthesised signals, at their standard tolerances."""

from __future__ import annotations

import numpy as np
import pytest

from callsure.dsp import (
    AnalysisParams,
    BatchAnalyzer,
    EventKind,
    StreamAnalyzer,
    VerdictKind,
)

RATE_HZ = 8000
ROWS_HZ = (697.0, 770.0, 852.0, 941.0)
COLUMNS_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = "123A456B789C*0#D"


def tone(hz, ms, level=8000.0, phase=0.0):
    t = np.arange(int(RATE_HZ * ms / 1000)) / RATE_HZ
    return level * np.sin(2 * np.pi * hz * t + phase)


def silence(ms):
    return np.zeros(int(RATE_HZ * ms / 1000))


def noise(ms, level=30.0, seed=0):
    return np.random.default_rng(seed).normal(0.0, level, int(RATE_HZ * ms / 1000))


def run(signal, params=None):
    # Every telephone line carries some noise; -60 dBFS of it here.
    signal = signal + noise(len(signal) * 1000 / RATE_HZ, level=30.0, seed=7)
    samples = np.clip(np.round(signal), -32768, 32767).astype(np.int16)
    analyzer = StreamAnalyzer(RATE_HZ, "pcm16", params=params)
    analyzer.feed(samples)
    verdict = analyzer.finish()
    return verdict, analyzer.drain_events()


def digits_of(events):
    return "".join(e.digit for e in events if e.kind is EventKind.DTMF)


def dtmf(key, ms=60, row_scale=1.0, column_scale=1.0, low_db=0.0, high_db=0.0):
    index = KEYS.index(key)
    row, column = ROWS_HZ[index // 4] * row_scale, COLUMNS_HZ[index % 4] * column_scale
    return tone(row, ms, 5000 * 10 ** (low_db / 20)) + tone(
        column, ms, 5000 * 10 ** (high_db / 20)
    )


def with_gaps(*parts, gap_ms=60):
    pieces = [silence(300)]
    for part in parts:
        pieces += [part, silence(gap_ms)]
    pieces.append(silence(300))
    return (
        noise(0)
        if not pieces
        else np.concatenate(pieces)
        + noise(sum(len(p) for p in pieces) * 1000 / RATE_HZ)
    )


@pytest.mark.parametrize("key", list(KEYS))
def test_dtmf_every_key_detected(key):
    _, events = run(with_gaps(dtmf(key)))
    assert digits_of(events) == key


@pytest.mark.parametrize("scale", [0.985, 1.015])
def test_dtmf_accepts_within_one_and_half_percent(scale):
    _, events = run(with_gaps(dtmf("5", row_scale=scale, column_scale=scale)))
    assert digits_of(events) == "5"


@pytest.mark.parametrize("scale", [0.96, 1.04])
def test_dtmf_rejects_beyond_three_and_half_percent(scale):
    _, events = run(with_gaps(dtmf("5", row_scale=scale, column_scale=scale)))
    assert digits_of(events) == ""


def test_dtmf_minimum_duration_and_gap():
    signal = with_gaps(dtmf("1", ms=40), dtmf("1", ms=40), gap_ms=40)
    _, events = run(signal)
    assert digits_of(events) == "11"


def test_dtmf_too_short_rejected():
    _, events = run(with_gaps(dtmf("1", ms=20)))
    assert digits_of(events) == ""


def test_dtmf_normal_twist_limit():
    accepted = run(with_gaps(dtmf("9", low_db=0.0, high_db=-7.0)))[1]
    rejected = run(with_gaps(dtmf("9", low_db=0.0, high_db=-10.0)))[1]
    assert digits_of(accepted) == "9"
    assert digits_of(rejected) == ""


def test_dtmf_reverse_twist_limit():
    accepted = run(with_gaps(dtmf("9", low_db=-3.0)))[1]
    rejected = run(with_gaps(dtmf("9", low_db=-6.0)))[1]
    assert digits_of(accepted) == "9"
    assert digits_of(rejected) == ""


def test_dtmf_talk_off_second_harmonic_rejected():
    # A voiced sound with strong second harmonics of both tones.
    pair = dtmf("5", ms=80)
    harmonics = tone(2 * 770.0, 80, 3000) + tone(2 * 1336.0, 80, 3000)
    _, events = run(with_gaps(pair + harmonics))
    assert digits_of(events) == ""


def test_dtmf_talk_off_energy_share_rejected():
    pair = dtmf("5", ms=80)
    _, events = run(with_gaps(pair + noise(80, level=4000, seed=3)))
    assert digits_of(events) == ""


SIT_CASES = {
    "IC": ((913.8, 274), (1370.6, 274)),
    "VC": ((985.2, 380), (1370.6, 274)),
    "NC": ((985.2, 380), (1428.5, 380)),
    "RO": ((913.8, 274), (1428.5, 380)),
    "IO": ((913.8, 380), (1428.5, 274)),
}


def sit(first, second, third=(1776.7, 380)):
    return np.concatenate([tone(hz, ms) for hz, ms in (first, second, third)])


@pytest.mark.parametrize("code", sorted(SIT_CASES))
def test_sit_north_american_codes(code):
    signal = np.concatenate([silence(200), sit(*SIT_CASES[code]), silence(2000)])
    verdict, _ = run(signal + noise(len(signal) * 1000 / RATE_HZ))
    assert verdict.kind is VerdictKind.SIT
    assert verdict.sit_code == code


def test_sit_generic_e180():
    signal = np.concatenate(
        [silence(200), sit((950, 330), (1400, 330), (1800, 330)), silence(2000)]
    )
    verdict, _ = run(signal)
    assert verdict.kind is VerdictKind.SIT
    assert verdict.sit_code == "E180"


def test_sit_generic_at_tolerance():
    signal = np.concatenate(
        [silence(200), sit((995, 270), (1355, 390), (1845, 330)), silence(2000)]
    )
    verdict, _ = run(signal)
    assert verdict.kind is VerdictKind.SIT
    assert verdict.sit_code == "E180"


@pytest.mark.parametrize(
    "segments",
    [
        ((1010, 330), (1400, 330), (1800, 330)),
        ((950, 330), (1400, 330), (1860, 330)),
        ((950, 180), (1400, 330), (1800, 330)),
        ((950, 330), (1400, 480), (1800, 330)),
    ],
)
def test_sit_just_outside_e180_is_not_sit(segments):
    signal = np.concatenate([silence(200), sit(*segments), silence(2000)])
    verdict, _ = run(signal)
    assert verdict.kind is not VerdictKind.SIT


def test_sit_out_of_band_is_not_sit():
    signal = np.concatenate(
        [silence(200), sit((850, 330), (1300, 330), (1700, 330)), silence(2000)]
    )
    verdict, _ = run(signal)
    assert verdict.kind is not VerdictKind.SIT


@pytest.mark.parametrize("hz", [2085.0, 2115.0])
def test_fax_ced_within_tolerance(hz):
    verdict, _ = run(np.concatenate([silence(300), tone(hz, 3000), silence(500)]))
    assert verdict.kind is VerdictKind.FAX
    assert verdict.cause.name == "FAX_CED"


def test_fax_ced_outside_tolerance_is_not_fax():
    verdict, _ = run(np.concatenate([silence(300), tone(2140.0, 3000), silence(500)]))
    assert verdict.kind is not VerdictKind.FAX


def test_fax_cng_cadence():
    burst = np.concatenate([tone(1100.0, 500), silence(3000)])
    verdict, events = run(np.concatenate([silence(300), burst, burst]))
    assert verdict.kind is VerdictKind.FAX
    assert any(e.kind is EventKind.FAX_CNG for e in events)


def test_fax_cng_outside_tolerance_is_not_cng():
    burst = np.concatenate([tone(1150.0, 500), silence(3000)])
    _, events = run(np.concatenate([silence(300), burst, burst]))
    assert not any(e.kind is EventKind.FAX_CNG for e in events)


def greeting(ms, seed=1):
    # Speech-like: a voiced buzz whose pitch and level move like syllables.
    t = np.arange(int(RATE_HZ * ms / 1000)) / RATE_HZ
    pitch = 120 + 30 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE_HZ
    buzz = sum(np.sin(k * phase) / k for k in range(1, 12))
    # Syllables of 125 ms with short pauses between them.
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0.0, None) ** 0.5
    return 4000 * buzz * envelope + noise(ms, 30, seed)


@pytest.mark.parametrize("hz", [440.0, 1000.0, 1400.0])
def test_beep_after_greeting_found(hz):
    signal = np.concatenate([silence(300), greeting(3000), silence(800), tone(hz, 400)])
    signal = np.concatenate([signal, silence(1000)])
    verdict, _ = run(signal + noise(len(signal) * 1000 / RATE_HZ))
    assert verdict.kind is VerdictKind.MACHINE
    assert verdict.beep_ms is not None
    assert abs(verdict.beep_ms - 4100) <= 50


def test_beep_long_after_greeting_found():
    signal = np.concatenate(
        [silence(300), greeting(3000), silence(4000), tone(850, 300)]
    )
    verdict, _ = run(np.concatenate([signal, silence(500)]))
    assert verdict.beep_ms is not None
    assert abs(verdict.beep_ms - 7300) <= 50


def test_ringback_is_not_a_beep():
    ring = tone(440.0, 2000) + tone(480.0, 2000)
    signal = np.concatenate([silence(300), greeting(3000), silence(800), ring])
    verdict, events = run(np.concatenate([signal, silence(1000)]))
    assert verdict.beep_ms is None
    assert any(e.kind is EventKind.RINGBACK for e in events)


@pytest.mark.parametrize(
    ("on_ms", "kind"), [(500, EventKind.BUSY), (250, EventKind.REORDER)]
)
def test_busy_and_reorder_cadences(on_ms, kind):
    cycle = np.concatenate([tone(480.0, on_ms) + tone(620.0, on_ms), silence(on_ms)])
    _, events = run(np.concatenate([silence(300), *[cycle] * 4]))
    assert sum(e.kind is kind for e in events) >= 3


def test_busy_with_wrong_tone_pair_is_not_busy():
    cycle = np.concatenate([tone(480.0, 500) + tone(700.0, 500), silence(500)])
    _, events = run(np.concatenate([silence(300), *[cycle] * 4]))
    assert not any(e.kind in (EventKind.BUSY, EventKind.REORDER) for e in events)


def test_short_word_then_silence_is_human():
    verdict, _ = run(np.concatenate([silence(400), greeting(500), silence(3000)]))
    assert verdict.kind is VerdictKind.HUMAN


def test_long_greeting_is_machine():
    verdict, _ = run(np.concatenate([silence(400), greeting(3500), silence(2000)]))
    assert verdict.kind is VerdictKind.MACHINE
    assert verdict.cause.name == "LONG_GREETING"


def test_human_silence_parameter_is_used():
    signal = np.concatenate([silence(400), greeting(500), silence(700), greeting(2500)])
    quick = run(signal, AnalysisParams(human_silence_ms=500))[0]
    patient = run(signal, AnalysisParams(human_silence_ms=900))[0]
    assert quick.kind is VerdictKind.HUMAN
    assert patient.kind is VerdictKind.MACHINE


def test_ringback_at_stream_start_is_not_speech():
    ring = tone(440.0, 2000, 3000) + tone(480.0, 2000, 3000)
    cycle = np.concatenate([ring, silence(4000)])
    signal = np.concatenate([cycle, cycle, greeting(500), silence(3000)])
    verdict, events = run(signal)
    assert sum(e.kind is EventKind.RINGBACK for e in events) == 2
    assert verdict.kind is VerdictKind.HUMAN
    assert verdict.decided_ms > 12000


@pytest.mark.parametrize(
    ("level", "kind", "cause"),
    [(1500.0, VerdictKind.NOTSURE, "NOISE"), (100.0, VerdictKind.SILENCE, "DEAD_AIR")],
)
def test_line_noise_is_not_speech(level, kind, cause):
    verdict, _ = run(noise(7000, level=level, seed=4))
    assert verdict.kind is kind
    assert verdict.cause.name == cause


@pytest.mark.parametrize("hz", [700.0, 1000.0])
def test_one_short_tone_then_quiet_is_a_person(hz):
    verdict, events = run(np.concatenate([silence(800), tone(hz, 450), silence(5750)]))
    assert [e.kind for e in events if e.kind is EventKind.TONE] == [EventKind.TONE]
    assert (verdict.kind, verdict.cause.name) == (VerdictKind.HUMAN, "LONE_SOUND")
    assert verdict.decided_ms == 5000


def test_lone_sound_rule_can_be_turned_off():
    signal = np.concatenate([silence(800), tone(700.0, 450), silence(5750)])
    verdict, _ = run(signal, AnalysisParams(lone_sound_ms=0))
    assert (verdict.kind, verdict.cause.name) == (VerdictKind.SILENCE, "DEAD_AIR")


@pytest.mark.parametrize(
    "signal",
    [
        # Two beeps, as from a voicemail that plays one before its own.
        np.concatenate(
            [silence(800), tone(700.0, 300), silence(1500), tone(1000.0, 300)]
        ),
        # A tone longer than lone_sound_ms.
        np.concatenate([silence(800), tone(700.0, 1800)]),
    ],
    ids=["two-tones", "long-tone"],
)
def test_lone_sound_excludes_two_or_long_tones(signal):
    signal = np.concatenate([signal, silence(7000 - len(signal) * 1000 // RATE_HZ)])
    verdict, _ = run(signal)
    assert verdict.kind is not VerdictKind.HUMAN


def test_lone_sound_ms_must_not_be_negative():
    with pytest.raises(ValueError, match="lone_sound_ms"):
        AnalysisParams(lone_sound_ms=-1)


def test_dtmf_found_in_noise():
    # Each tone 7 dB above white line noise (600 peak, 190 RMS).
    digits = [np.concatenate([dtmf(key, ms=60), silence(80)]) for key in "159*0#D"]
    signal = np.concatenate([silence(500), *digits, silence(500)])
    signal = signal * (600.0 / 5000.0) + noise(len(signal) / 8, level=190, seed=9)
    _, events = run(signal)
    assert digits_of(events) == "159*0#D"


@pytest.mark.parametrize("hz", [650.0, 1000.0, 1400.0])
def test_faint_beep_found_in_noise(hz):
    # The beep 14 dB above line noise of RMS 60, after a greeting.
    signal = np.concatenate(
        [silence(300), greeting(3000), silence(1000), tone(hz, 500)]
    )
    signal = np.concatenate([signal, silence(1000)])
    beep_level = 60.0 * np.sqrt(2) * 10 ** (14 / 20)
    signal = np.where(
        np.arange(len(signal)) >= 4300 * 8, signal * beep_level / 8000, signal
    )
    verdict, _ = run(signal + noise(len(signal) / 8, level=60, seed=5))
    assert verdict.beep_ms is not None
    assert abs(verdict.beep_ms - 4300) <= 50


def feed_batch(batch, slot, signal):
    samples = np.clip(np.round(signal), -32768, 32767).astype(np.int16)
    frames = np.zeros((1, 160), dtype=np.int16)
    for start in range(0, len(samples) // 160 * 160, 160):
        frames[slot] = samples[start : start + 160]
        batch.process(frames)


def test_early_media_ringback_then_answered_person():
    batch = BatchAnalyzer(1)
    slot = batch.open(answered=False)
    ring = tone(440.0, 2000, 3000) + tone(480.0, 2000, 3000)
    feed_batch(batch, slot, np.concatenate([ring, silence(4000), ring]) + noise(8000))
    assert batch.verdict(slot) is None
    batch.mark_answered(slot)
    feed_batch(
        batch, slot, np.concatenate([silence(300), greeting(500), silence(2000)])
    )
    verdict = batch.verdict(slot)
    assert verdict.kind is VerdictKind.HUMAN
    assert verdict.decided_ms > 8300


def test_early_media_sit_is_sit():
    batch = BatchAnalyzer(1)
    slot = batch.open(answered=False)
    signal = np.concatenate([silence(200), sit(*SIT_CASES["NC"]), silence(1000)])
    feed_batch(batch, slot, signal + noise(len(signal) / 8))
    verdict = batch.verdict(slot)
    assert verdict.kind is VerdictKind.SIT
    assert verdict.sit_code == "NC"
