"""Call-progress analysis: who or what answered an outbound call.

Tells a person (HUMAN) from an answering machine (MACHINE), a network
announcement with special information tones (SIT), a fax (FAX), dead air
(SILENCE) or anything unclear (NOTSURE), and reports speech, pauses,
tones, voicemail beeps, DTMF digits, SIT codes, fax tones and ringback
and busy cadences as events. It imports nothing from the rest of
callsure, so dialers can embed it.

Audio is int16 PCM or G.711 mu-law/A-law codes (uint8), 8 or 16 kHz.
Everything is analysed in 10 ms blocks at 8 kHz, so frame lengths of 10,
20 or 30 ms give the same results. Times are in ms from the start of the
stream.

One call at a time, fed in chunks of any size::

    from callsure.dsp import StreamAnalyzer, read_wav

    audio = read_wav("call.wav")
    analyzer = StreamAnalyzer(audio.sample_rate_hz, audio.encoding)
    analyzer.feed(audio.samples)
    verdict = analyzer.finish()          # explicit end of stream
    print(verdict.kind, verdict.cause, verdict.decided_ms, verdict.beep_ms)

A gateway with thousands of calls makes one call per 20 ms tick; it
releases the GIL and keeps every call's state in C arrays::

    import numpy as np
    from callsure.dsp import AnalysisParams, BatchAnalyzer, VerdictKind

    batch = BatchAnalyzer(2000, sample_rate_hz=8000, frame_ms=20, encoding="ulaw")
    slot = batch.open(AnalysisParams(human_silence_ms=600), answered=False)
    frames = np.zeros((2000, 160), dtype=np.uint8)   # one row per slot
    present = np.zeros(2000, dtype=bool)
    # each tick: copy each call's frame into frames[slot], set present[slot]
    batch.process(frames, present)
    batch.mark_answered(slot)            # on 200 OK; early media before
    batch.set_playing(slot, True)        # while the engine plays a prompt
    for event in batch.drain_events(slot):
        print(event.kind, event.start_ms, event.digit)
    verdict = batch.verdict(slot)        # None until decided
    if verdict is not None and verdict.kind is VerdictKind.HUMAN:
        ...                              # connect an agent
    batch.close(slot)

After a MACHINE verdict the analysis keeps listening, so
``verdict(slot).beep_ms`` is filled in when the beep comes, however long
after the greeting. ``batch.finish(slot)`` ends the slot's stream and
returns its final verdict, and ``process`` skips the slot from then on
until ``close``.

How a verdict is reached (``Cause``):

- SHORT_GREETING (HUMAN): a compact greeting (at most
  ``compact_greeting_ms`` long, speech filling at least
  ``compact_speech_share`` of it) followed by ``compact_pause_ms`` of
  silence; another greeting of at most ``short_greeting_ms`` followed by
  ``human_silence_ms``; or a longer one followed by a pause that rises
  linearly with its length to ``long_pause_ms`` at ``max_greeting_ms``.
  A person says a word or two and waits, while machines seldom pause
  that long inside a greeting, except those that read out digits or
  words one by one, which leave gaps between them. Speech before answer
  never makes a HUMAN.
- SHORT_PAUSE (HUMAN, provisional): only with ``provisional_pause_ms``
  set, a greeting of at most ``short_greeting_ms`` followed by that
  shorter pause. The analysis goes on: the verdict becomes HUMAN
  (SHORT_GREETING) once the usual pause has passed, or MACHINE
  (LONG_GREETING, BEEP) if the greeting goes on or a beep comes. Each
  change is a new VERDICT event and ``Verdict.provisional`` is True until
  then. A gateway can start bridging an agent on the provisional verdict
  and must drop the bridge on the revision. On the development corpus
  (``bench/amd_accuracy.py``, 200 ms) the median person gets HUMAN
  0.14 s sooner than with the defaults alone, and 18 % of machines get
  a provisional HUMAN that is revised later.
- LONG_GREETING (MACHINE): the greeting (speech or music, pauses shorter
  than the above included) reaches ``max_greeting_ms``;
  BEEP (MACHINE): a steady single tone after a pause following speech;
  EARLY_MEDIA (MACHINE): such a greeting before answer (an announcement).
- SIT_TONE (SIT), FAX_CED and FAX_CNG (FAX): the standard tones.
- LONE_SOUND (HUMAN): no speech after answer, only one tone of at most
  ``lone_sound_ms`` and quiet until ``silence_timeout_ms``: someone
  picked up and waits to be spoken to (a bare voicemail beep sounds the
  same; set 0 to make these SILENCE).
- NO_AUDIO (SILENCE): nothing above ``min_level_db`` for
  ``silence_timeout_ms`` after answer; DEAD_AIR (SILENCE): only quiet
  line noise.
- NOISE (NOTSURE): loud noise but no speech; RINGBACK, BUSY (NOTSURE):
  mostly progress tones, a busy or reorder cadence; TIMEOUT: undecided
  after ``max_analysis_ms``; STREAM_END: the stream ended undecided.

The silence and analysis limits do not count time while the engine plays
audio (``set_playing``) and start again after each ringback or busy tone.
Events wait in a ring of 64 per call; drain them at least every few
seconds.

Analysis works on 10 ms blocks at 8 kHz (16 kHz input is decimated by a
half-band filter): level against a minimum-statistics noise floor,
linear-prediction tone purity and voicing, a 16-tone DFT bank run
only on tonal blocks (DTMF, SIT bands, fax, 440/480/620 Hz), and the
word and pause structure of speech.
"""

import numpy as np

from callsure.dsp._g711 import decode_alaw as _decode_alaw
from callsure.dsp._g711 import decode_ulaw as _decode_ulaw
from callsure.dsp.analyzer import BatchAnalyzer, StreamAnalyzer
from callsure.dsp.params import (
    AnalysisParams,
    Cause,
    Event,
    EventKind,
    Verdict,
    VerdictKind,
)
from callsure.dsp.wav import WavAudio, read_wav

__all__ = [
    "AnalysisParams",
    "BatchAnalyzer",
    "Cause",
    "Event",
    "EventKind",
    "StreamAnalyzer",
    "Verdict",
    "VerdictKind",
    "WavAudio",
    "decode_g711",
    "read_wav",
]


def decode_g711(codes, law: str) -> np.ndarray:
    """Decode G.711 bytes to int16 samples.

    Parameters
    ----------
    codes : bytes or ndarray of uint8, shape (n,)
    law : {"ulaw", "alaw"}

    Returns
    -------
    ndarray of int16, shape (n,)
    """
    data = np.ascontiguousarray(np.frombuffer(codes, dtype=np.uint8))
    out = np.empty(data.shape[0], dtype=np.int16)
    if law == "ulaw":
        _decode_ulaw(data, out)
    elif law == "alaw":
        _decode_alaw(data, out)
    else:
        raise ValueError(f"law must be 'ulaw' or 'alaw', got {law!r}")
    return out
