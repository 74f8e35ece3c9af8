"""The call-progress facade: validation, chunking, frame lengths, memory."""

from __future__ import annotations

import tracemalloc
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callsure.dsp import (
    AnalysisParams,
    BatchAnalyzer,
    Cause,
    EventKind,
    StreamAnalyzer,
    VerdictKind,
    _kernel,
    decode_g711,
    read_wav,
)
from callsure.dsp.params import PARAM_RANGES


@pytest.fixture(scope="module")
def machine_call(amd_corpus):
    return read_wav(amd_corpus / "dev-0000.wav").samples


def outcome(analyzer):
    verdict = analyzer.finish()
    return verdict, analyzer.drain_events()


def test_chunked_equals_one_shot(machine_call):
    whole = StreamAnalyzer()
    whole.feed(machine_call)
    chunked = StreamAnalyzer()
    rng = np.random.default_rng(5)
    start = 0
    while start < len(machine_call):
        size = int(rng.integers(0, 997))
        chunked.feed(machine_call[start : start + size])
        start += size
    assert outcome(chunked) == outcome(whole)


def test_bytes_in_odd_chunks_equal_array(machine_call):
    whole = StreamAnalyzer()
    whole.feed(machine_call)
    data = machine_call.astype("<i2").tobytes()
    chunked = StreamAnalyzer()
    for start in range(0, len(data), 333):
        chunked.feed(data[start : start + 333])
    assert outcome(chunked) == outcome(whole)


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_batch_frame_lengths_agree_with_stream(machine_call, frame_ms):
    stream = StreamAnalyzer()
    samples_per_frame = 8 * frame_ms
    usable = len(machine_call) // 240 * 240
    stream.feed(machine_call[:usable])
    batch = BatchAnalyzer(3, frame_ms=frame_ms)
    slot = batch.open()
    frames = np.zeros((3, samples_per_frame), dtype=np.int16)
    for start in range(0, usable, samples_per_frame):
        frames[slot] = machine_call[start : start + samples_per_frame]
        batch.process(frames)
    assert batch.finish(slot) == stream.finish()


def test_batch_present_mask_skips_slots(machine_call):
    batch = BatchAnalyzer(2)
    first, second = batch.open(), batch.open()
    frames = np.zeros((2, 160), dtype=np.int16)
    present = np.array([True, False])
    for start in range(0, 160 * 100, 160):
        frames[first] = machine_call[start : start + 160]
        batch.process(frames, present)
    assert batch.elapsed_ms(first) == 2000
    assert batch.elapsed_ms(second) == 0


def test_sixteen_khz_and_g711_paths(machine_call):
    # 16 kHz by repeating samples, and mu-law codes: same verdict kind.
    wide = StreamAnalyzer(16000)
    wide.feed(np.repeat(machine_call, 2))
    assert wide.finish().kind is VerdictKind.MACHINE
    table = decode_g711(bytes(range(256)), "ulaw").astype(np.int32)
    codes = (
        np.abs(table[None, :] - machine_call[:, None]).argmin(axis=1).astype(np.uint8)
    )
    mulaw = StreamAnalyzer(8000, "ulaw")
    mulaw.feed(codes)
    assert mulaw.finish().kind is VerdictKind.MACHINE


def test_early_media_announcement_is_machine(amd_corpus):
    # A 3 s announcement heard before the call is answered.
    announcement = read_wav(amd_corpus / "dev-0030.wav").samples
    batch = BatchAnalyzer(1)
    slot = batch.open(answered=False)
    frames = np.zeros((1, 160), dtype=np.int16)
    for start in range(0, len(announcement) // 160 * 160, 160):
        frames[0] = announcement[start : start + 160]
        batch.process(frames)
    verdict = batch.verdict(slot)
    assert verdict.kind is VerdictKind.MACHINE
    assert verdict.cause.name == "EARLY_MEDIA"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_streams": 0}, "max_streams"),
        ({"max_streams": 2, "sample_rate_hz": 44100}, "44100"),
        ({"max_streams": 2, "frame_ms": 25}, "25"),
        ({"max_streams": 2, "encoding": "opus"}, "opus"),
    ],
)
def test_batch_rejects_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchAnalyzer(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_streams": True}, "max_streams must be an int .* got True"),
        ({"max_streams": 2.0}, "max_streams must be an int .* got 2.0"),
        ({"max_streams": 2, "frame_ms": 20.0}, "frame_ms must be the int .* 20.0"),
        ({"max_streams": 2, "sample_rate_hz": 8000.0}, "sample_rate_hz .* 8000.0"),
        ({"max_streams": 2, "encoding": ["pcm16"]}, r"encoding .* \['pcm16'\]"),
    ],
)
def test_batch_rejects_wrong_types(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchAnalyzer(**kwargs)


def test_stream_rejects_encoding_list():
    with pytest.raises(ValueError, match="encoding must be 'pcm16', 'ulaw' or 'alaw'"):
        StreamAnalyzer(8000, ["pcm16"])


def test_batch_accepts_numpy_integers():
    batch = BatchAnalyzer(np.int64(2), np.int64(16000), np.int32(20))
    assert batch.samples_per_frame == 320
    assert type(batch.samples_per_frame) is int
    slot = batch.open()
    assert batch.elapsed_ms(np.int64(slot)) == 0


@pytest.mark.parametrize("slot", [True, False, np.bool_(True), 0.0])
def test_batch_rejects_non_int_slots(slot):
    batch = BatchAnalyzer(2)
    batch.open()
    batch.open()
    with pytest.raises(ValueError, match="slot must be an int from 0 to 1"):
        batch.verdict(slot)
    with pytest.raises(ValueError, match="slot must be an int from 0 to 1"):
        batch.elapsed_ms(slot)


def test_batch_skips_finished_slot(machine_call):
    batch = BatchAnalyzer(2)
    finished, running = batch.open(), batch.open()
    frames = np.zeros((2, 160), dtype=np.int16)
    for start in range(0, 160 * 50, 160):
        frames[:] = machine_call[start : start + 160]
        batch.process(frames)
    verdict = batch.finish(finished)
    events = batch.drain_events(finished)
    for start in range(160 * 50, 160 * 150, 160):
        frames[:] = machine_call[start : start + 160]
        batch.process(frames)
    assert batch.elapsed_ms(finished) == 1000
    assert batch.elapsed_ms(running) == 3000
    assert batch.verdict(finished) == verdict
    assert batch.finish(finished) == verdict
    assert batch.drain_events(finished) == []
    assert events[-1].kind is EventKind.VERDICT
    batch.mark_answered(finished)
    batch.set_playing(finished, True)
    assert batch.verdict(finished) == verdict

    batch.close(finished)
    reopened = batch.open()
    assert reopened == finished
    batch.process(frames)
    assert batch.elapsed_ms(reopened) == 20
    assert batch.verdict(reopened) is None


def test_params_reject_negative_provisional_pause():
    with pytest.raises(ValueError, match="provisional_pause_ms .* got -1"):
        AnalysisParams(provisional_pause_ms=-1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("compact_pause_ms", -1),
        ("compact_greeting_ms", -1),
        ("compact_speech_share", 1.5),
    ],
)
def test_params_reject_bad_compact_greeting(field, value):
    with pytest.raises(ValueError, match=f"{field} .*got .*{value}"):
        AnalysisParams(**{field: value})


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("silence_timeout_ms", -5, "from 10 to 3600000 ms"),
        ("max_analysis_ms", -1, "from 10 to 3600000 ms"),
        ("min_level_db", -400, "from 0 to 90 dB"),
        ("speech_margin_db", 91, "from 0 to 90 dB"),
        ("tone_purity", -3, "from 0 to 4"),
        ("structured_purity", 4.5, "from 0 to 4"),
        ("voicing_min", -1.5, "from -1 to 1"),
        ("beep_min_hz", 5000, "from 0 to 4000 Hz"),
        ("beep_max_hz", -100, "from 0 to 4000 Hz"),
        ("fax_ced_ms", -1e9, "from 10 to 3600000 ms"),
        ("human_silence_ms", 1e39, "from 10 to 3600000 ms"),
        ("human_silence_ms", 10**30, "from 10 to 3600000 ms"),
        ("human_silence_ms", 10**400, "from 10 to 3600000 ms"),
        ("human_silence_ms", float("nan"), "from 10 to 3600000 ms"),
        ("min_word_ms", 5, "from 10 to 3600000 ms"),
        ("dtmf_frequency_tolerance", 0.2, "from 0 to 0.05"),
        ("dtmf_harmonic_db", 3, "from -90 to 0 dB"),
        ("dtmf_energy_share", 1.5, "from 0 to 1"),
        ("lone_sound_ms", 5, "0 [(]off[)] or from 10 to 3600000 ms"),
        ("beep_quiet_ms", -10, "0 [(]off[)] or from 10 to 3600000 ms"),
    ],
)
def test_params_reject_out_of_range(field, value, expected):
    with pytest.raises(ValueError, match=f"^{field} must be {expected}, got "):
        AnalysisParams(**{field: value})


def test_params_reject_inverted_beep_band():
    with pytest.raises(ValueError, match="beep_min_hz must be below beep_max_hz"):
        AnalysisParams(beep_min_hz=2000, beep_max_hz=1000)


@pytest.mark.parametrize("field", [f.name for f in fields(AnalysisParams)])
def test_params_accept_range_bounds(field):
    low, high = PARAM_RANGES[field]
    others = {}
    # The beep band must keep its minimum below its maximum.
    if field == "beep_min_hz":
        high -= 1
        others = {"beep_max_hz": high + 1}
    if field == "beep_max_hz":
        low += 1
        others = {"beep_min_hz": low - 1}
    assert getattr(AnalysisParams(**{field: low}, **others), field) == low
    assert getattr(AnalysisParams(**{field: high}, **others), field) == high


@pytest.mark.parametrize("value", [True, "600", None, 600j])
def test_params_reject_non_numbers(value):
    with pytest.raises(TypeError, match="human_silence_ms must be a real number"):
        AnalysisParams(human_silence_ms=value)


@pytest.mark.parametrize(
    "value", [np.int64(600), np.int32(600), np.float32(600), np.float64(600), 600]
)
def test_params_accept_numpy_numbers(value):
    params = AnalysisParams(human_silence_ms=value)
    assert params.human_silence_ms == 600.0
    assert type(params.human_silence_ms) is float
    assert params == AnalysisParams(human_silence_ms=600.0)


def test_batch_rejects_bad_frames():
    batch = BatchAnalyzer(2)
    batch.open()
    with pytest.raises(ValueError, match="float64"):
        batch.process(np.zeros((2, 160)))
    with pytest.raises(ValueError, match=r"\(2, 159\)"):
        batch.process(np.zeros((2, 159), dtype=np.int16))
    with pytest.raises(ValueError, match="present"):
        batch.process(np.zeros((2, 160), dtype=np.int16), np.ones(3, dtype=bool))


def test_batch_rejects_closed_slot_and_full():
    batch = BatchAnalyzer(1)
    slot = batch.open()
    with pytest.raises(RuntimeError, match="slots are in use"):
        batch.open()
    batch.close(slot)
    with pytest.raises(ValueError, match="not open"):
        batch.verdict(slot)


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=4000),
    rate=st.sampled_from([8000, 16000, 11025]),
    encoding=st.sampled_from(["pcm16", "ulaw", "alaw", "gsm"]),
    chunk=st.integers(min_value=1, max_value=700),
)
def test_stream_fuzz_never_crashes(data, rate, encoding, chunk):
    try:
        analyzer = StreamAnalyzer(rate, encoding)
    except ValueError as exc:
        assert str(rate) in str(exc) or encoding in str(exc)
        return
    for start in range(0, len(data), chunk):
        analyzer.feed(data[start : start + chunk])
    verdict = analyzer.finish()
    assert verdict is not None
    with pytest.raises(ValueError, match="finish"):
        analyzer.feed(b"\x00\x00")


@pytest.mark.slow
def test_one_hour_stream_memory_is_flat():
    analyzer = StreamAnalyzer()
    rng = np.random.default_rng(11)
    chunk = rng.normal(0, 800, 8000 * 60).astype(np.int16)  # one minute
    tracemalloc.start()
    analyzer.feed(chunk)
    analyzer.drain_events()
    baseline = tracemalloc.get_traced_memory()[0]
    for _ in range(59):
        analyzer.feed(chunk)
        analyzer.drain_events()
    grown = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    assert analyzer.elapsed_ms == 3_600_000
    assert grown < 256 * 1024


def test_playing_pauses_silence_timeout():
    quiet = np.random.default_rng(2).normal(0, 30, 8000 * 9).astype(np.int16)
    listening = StreamAnalyzer()
    listening.feed(quiet)
    prompting = StreamAnalyzer()
    prompting.set_playing(True)
    prompting.feed(quiet[: 8000 * 4])
    prompting.set_playing(False)
    prompting.feed(quiet[8000 * 4 : 8000 * 8])
    assert listening.verdict.decided_ms == 5000
    assert prompting.verdict is None
    prompting.feed(quiet[8000 * 8 :])
    assert prompting.verdict.kind is VerdictKind.SILENCE
    assert prompting.verdict.decided_ms == 9000


def test_kernel_codes_match_facade():
    assert set(_kernel.PARAM_INDEX) == {f.name for f in fields(AnalysisParams)}
    assert sorted(_kernel.PARAM_INDEX.values()) == list(range(len(_kernel.PARAM_INDEX)))
    assert _kernel.EVENT_CODES == {kind.name: kind.value for kind in EventKind}
    assert _kernel.VERDICT_CODES == {kind.name: kind.value for kind in VerdictKind}
    assert _kernel.CAUSE_CODES == {cause.name: cause.value for cause in Cause}


@pytest.mark.parametrize("chunk", [1, 2, 79, 80, 81, 159, 160, 161, 4001])
def test_boundary_chunk_lengths_equal_one_shot(machine_call, chunk):
    whole = StreamAnalyzer()
    whole.feed(machine_call[:24000])
    chunked = StreamAnalyzer()
    for start in range(0, 24000, chunk):
        chunked.feed(machine_call[start : min(start + chunk, 24000)])
    assert outcome(chunked) == outcome(whole)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(min_value=0, max_value=5),
    columns=st.integers(min_value=0, max_value=500),
    dtype=st.sampled_from(["int16", "uint8", "float32", "int32"]),
    frame_ms=st.sampled_from([10, 20, 30]),
    encoding=st.sampled_from(["pcm16", "ulaw", "alaw"]),
)
def test_batch_fuzz_rejects_or_processes(rows, columns, dtype, frame_ms, encoding):
    batch = BatchAnalyzer(3, 8000, frame_ms, encoding)
    batch.open()
    frames = (
        np.random.default_rng(rows * 1000 + columns)
        .integers(-200, 200, (rows, columns))
        .astype(dtype)
    )
    good_dtype = "int16" if encoding == "pcm16" else "uint8"
    if frames.shape == (3, 8 * frame_ms) and dtype == good_dtype:
        batch.process(frames)
        assert batch.elapsed_ms(0) == frame_ms
    else:
        with pytest.raises(ValueError, match="frames must"):
            batch.process(frames)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("dev-0000.wav", "MACHINE"), ("dev-0003.wav", "HUMAN"), ("dev-0009.wav", "SIT")],
)
def test_sixteen_khz_resampled_agrees(amd_corpus, name, kind):
    from scipy.signal import resample_poly

    narrow = read_wav(amd_corpus / name).samples
    wide = np.clip(resample_poly(narrow.astype(float), 2, 1), -32768, 32767)
    analyzer = StreamAnalyzer(16000)
    analyzer.feed(wide.astype(np.int16))
    verdict = analyzer.finish()
    assert verdict.kind.name == kind
