"""Parameters, verdicts and events of the call-progress analysis."""

from __future__ import annotations

import enum
import math
import numbers
import reprlib
from dataclasses import dataclass, fields

import numpy as np

from callsure.dsp._kernel import PARAM_INDEX, SIT_CODES

__all__ = ["AnalysisParams", "Cause", "Event", "EventKind", "Verdict", "VerdictKind"]

DTMF_KEYS = "123A456B789C*0#D"
_POWER_RATIOS = {"dtmf_normal_twist_db", "dtmf_reverse_twist_db", "dtmf_harmonic_db"}

# Valid ranges of the AnalysisParams fields, bounds included, from how the
# kernel uses each field. All of them lie well inside float32.
#
# Block levels run from 0 dB (digital silence, 10 log10(0 + 1)) to
# 90.3 dB (a full-scale square wave), so 90 dB bounds levels, margins and
# DTMF twists.
MAX_LEVEL_DB = 90.0
# The kernel counts time in 10 ms blocks, and a shorter duration would
# round to no block at all.
MIN_DURATION_MS = 10.0
MAX_DURATION_MS = 3_600_000.0
# Everything is analysed at 8 kHz, so no tone lies above 4 kHz.
MAX_FREQUENCY_HZ = 4000.0
_DURATION = (MIN_DURATION_MS, MAX_DURATION_MS)
_LEVEL = (0.0, MAX_LEVEL_DB)
# Prediction residuals relative to the block energy run from 0 (one pure
# tone) to 4, the value given to digital silence. White noise is near 2.
_PURITY = (0.0, 4.0)
# A lag-1 autocorrelation coefficient.
_VOICING = (-1.0, 1.0)
_SHARE = (0.0, 1.0)
PARAM_RANGES = {
    "speech_margin_db": _LEVEL,
    "min_level_db": _LEVEL,
    "human_silence_ms": _DURATION,
    "max_greeting_ms": _DURATION,
    "short_greeting_ms": _DURATION,
    "long_pause_ms": _DURATION,
    "min_word_ms": _DURATION,
    "silence_timeout_ms": _DURATION,
    "max_analysis_ms": _DURATION,
    "tone_margin_db": _LEVEL,
    "tone_purity": _PURITY,
    "beep_min_ms": _DURATION,
    "beep_quiet_ms": _DURATION,
    "beep_min_hz": (0.0, MAX_FREQUENCY_HZ),
    "beep_max_hz": (0.0, MAX_FREQUENCY_HZ),
    # Neighbouring DTMF frequencies lie 10.4-10.6 % apart, so a wider
    # tolerance would accept a tone halfway between two of them.
    "dtmf_frequency_tolerance": (0.0, 0.05),
    "dtmf_normal_twist_db": _LEVEL,
    "dtmf_reverse_twist_db": _LEVEL,
    "dtmf_harmonic_db": (-MAX_LEVEL_DB, 0.0),
    "dtmf_energy_share": _SHARE,
    "fax_ced_ms": _DURATION,
    "voicing_min": _VOICING,
    "structured_voicing": _VOICING,
    "structured_purity": _PURITY,
    "provisional_pause_ms": _DURATION,
    "compact_pause_ms": _DURATION,
    "compact_greeting_ms": _DURATION,
    "compact_speech_share": _SHARE,
    "lone_sound_ms": _DURATION,
}
# Durations that may also be 0, which turns the rule off (for
# beep_quiet_ms, a beep then needs no quiet before it).
_UNITS = {"ms": " ms", "db": " dB", "hz": " Hz"}
_ZERO_ALLOWED = {
    "beep_quiet_ms",
    "provisional_pause_ms",
    "compact_pause_ms",
    "compact_greeting_ms",
    "lone_sound_ms",
}


def _checked_value(name: str, value) -> float:
    """Return an AnalysisParams field's value as a float, or raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number (int, float or a numpy number), "
            f"got {value!r} of type {type(value).__name__}"
        )
    try:
        number = float(value)
    except OverflowError:
        # An int too large for a float lies outside every range.
        number = math.inf
    low, high = PARAM_RANGES[name]
    if name in _ZERO_ALLOWED and number == 0.0:
        return number
    if not low <= number <= high:
        unit = _UNITS.get(name.rsplit("_", 1)[-1], "")
        expected = f"from {low:.10g} to {high:.10g}{unit}"
        if name in _ZERO_ALLOWED:
            expected = f"0 (off) or {expected}"
        raise ValueError(f"{name} must be {expected}, got {reprlib.repr(value)}")
    return number


@dataclass(frozen=True)
class AnalysisParams:
    """Tunable limits of one call's analysis; the defaults suit most trunks.

    Levels are in dB relative to one int16 unit squared (a full-scale sine
    is 87 dB), times in ms, frequencies in Hz. Each field must lie in
    the range its description gives, bounds included: the constructor
    raises ValueError naming the field otherwise, and TypeError for a
    value that is not a real number. Ints and numpy numbers are stored
    as floats.

    Attributes
    ----------
    speech_margin_db : float
        Level above the noise floor (the minimum 10 ms level over the last
        1.2-1.6 s) at which a block can be speech. 0 to 90 dB: block levels
        run from 0 dB (digital silence) to 90.3 dB (a full-scale square
        wave).
    min_level_db : float
        Level below which a block is silence whatever the floor (30 dB is
        an RMS of 32, -60 dBFS). 0 to 90 dB.
    human_silence_ms : float
        Pause after a short greeting that makes the call HUMAN, unless the
        greeting is compact (see ``compact_pause_ms``). It also ends an
        utterance (SPEECH_END) and reports a SILENCE event. 10 ms (one
        analysis block) to 3,600,000 ms (1 h), like every duration here.
        The docs of durations that may also be 0 state it.
    max_greeting_ms : float
        Greeting length (first word to last word so far, pauses included)
        at which the call is a MACHINE.
    short_greeting_ms : float
        Maximum length of a greeting that ``human_silence_ms`` of silence
        after it makes HUMAN.
    long_pause_ms : float
        Pause that makes a greeting just shorter than ``max_greeting_ms``
        HUMAN: a person who spoke a few words and now waits. For greetings
        between ``short_greeting_ms`` and ``max_greeting_ms`` the pause
        required rises linearly from ``human_silence_ms`` to this, because
        machines pause longer the longer their greeting has run.
    min_word_ms : float
        Shortest run of speech blocks that starts a word.
    silence_timeout_ms : float
        Time from answer without speech after which the call is SILENCE
        (or NOTSURE when the line carried noise or tones). Shorter than
        ``max_analysis_ms`` for the SILENCE rule to apply.
    max_analysis_ms : float
        Time from answer after which an undecided call is NOTSURE.
    tone_margin_db : float
        Level above the floor at which a block is checked for tones.
        0 to 90 dB.
    tone_purity : float
        Largest prediction residual (relative to the block's energy) of a
        block explained by one or two tones. 0 to 4: the residual is 0 for
        a pure tone, about 2 for white noise and 4 for digital silence.
    beep_min_ms : float
        Shortest voicemail beep (beeps last 70 ms to 1.5 s).
    beep_quiet_ms : float
        Quiet required just before a beep, which separates it from music,
        or 0 for none.
    beep_min_hz, beep_max_hz : float
        Frequency range of voicemail beeps, 0 to 4000 Hz (audio is
        analysed at 8 kHz), minimum below maximum. Only tones of 200 to
        3400 Hz are tracked, whatever the range.
    dtmf_frequency_tolerance : float
        Largest relative frequency deviation of a DTMF tone; ITU-T Q.24
        asks receivers to accept 1.5 % and reject beyond 3.5 %. 0 to 0.05:
        neighbouring DTMF frequencies lie about 10.5 % apart.
    dtmf_normal_twist_db, dtmf_reverse_twist_db : float
        How far the low group may exceed the high group, and the reverse.
        0 to 90 dB.
    dtmf_harmonic_db : float
        Largest level of a DTMF tone's second harmonic relative to the tone
        (talk-off protection: voice is rich in harmonics). -90 to 0 dB.
    dtmf_energy_share : float
        Smallest share of the block's energy in the two DTMF tones, 0 to 1.
    fax_ced_ms : float
        Length of a 2100 Hz tone that makes the call FAX (CED lasts 2.6-4 s).
    voicing_min : float
        Smallest lag-1 autocorrelation of a speech block; white line noise
        is near 0, voiced speech near 1. -1 to 1.
    structured_voicing, structured_purity : float
        Sound 6 dB above ``min_level_db`` counts as speech or music
        whatever the floor when its lag-1 autocorrelation is at least
        ``structured_voicing`` and its order-2 prediction residual is
        below ``structured_purity`` (white noise: about 0 and 2). This
        catches quiet music that fills the stream from its start; raise
        them on lines with strongly coloured noise. ``structured_voicing``
        is -1 to 1, ``structured_purity`` 0 to 4.
    provisional_pause_ms : float
        Pause after a greeting of at most ``short_greeting_ms`` that gives
        a provisional HUMAN (cause SHORT_PAUSE), or 0 for none. The
        analysis then goes on and replaces it by HUMAN (SHORT_GREETING)
        when the usual pause follows, or by MACHINE (LONG_GREETING or
        BEEP) when the greeting goes on or a beep comes. Each change is
        a VERDICT event, and a stream that ends before either keeps the
        provisional verdict. Off by default because a consumer that acts
        on the first verdict alone would connect the machines it revises.
    compact_pause_ms : float
        Pause that makes a compact greeting HUMAN (a final verdict, cause
        SHORT_GREETING), or 0 to turn this rule off. A greeting is compact
        when it lasts at most ``compact_greeting_ms`` and speech fills at
        least ``compact_speech_share`` of it: a person's "hello?". Other
        greetings need ``human_silence_ms`` or more.
    compact_greeting_ms : float
        Maximum length of a compact greeting, from its first word to its
        last, or 0 to turn the rule off. Longer ones gain little, because
        HUMAN would come more than 1.15 s after the first word anyway,
        while machines of the corpus pause 250-460 ms after 1.01-1.05 s of
        greeting.
    compact_speech_share : float
        Smallest share of the greeting's 10 ms blocks, first to last word,
        judged speech for it to be compact. A machine that reads out
        digits or words one by one leaves more gaps than a person's one
        or two words. 0 to 1.
    lone_sound_ms : float
        Longest single tone that, heard after answer with no speech and
        nothing else before ``silence_timeout_ms``, makes the call HUMAN
        (cause LONE_SOUND): someone picked up, the line gave one short
        sound (a handset chirp, a word heard only as a tone) and they wait
        to be spoken to. 0 turns the rule off and leaves such calls
        SILENCE (DEAD_AIR). A voicemail with no greeting at all, only its
        beep, sounds the same; a dialer that must never connect an agent
        to one sets 0 and loses these persons instead.
    """

    speech_margin_db: float = 10.0
    min_level_db: float = 30.0
    human_silence_ms: float = 500.0
    max_greeting_ms: float = 2500.0
    short_greeting_ms: float = 1200.0
    long_pause_ms: float = 1000.0
    min_word_ms: float = 60.0
    silence_timeout_ms: float = 5000.0
    max_analysis_ms: float = 8000.0
    tone_margin_db: float = 6.0
    tone_purity: float = 0.05
    beep_min_ms: float = 80.0
    beep_quiet_ms: float = 100.0
    beep_min_hz: float = 300.0
    beep_max_hz: float = 2050.0
    dtmf_frequency_tolerance: float = 0.025
    dtmf_normal_twist_db: float = 8.0
    dtmf_reverse_twist_db: float = 4.0
    dtmf_harmonic_db: float = -10.0
    dtmf_energy_share: float = 0.7
    fax_ced_ms: float = 700.0
    voicing_min: float = 0.0
    structured_voicing: float = 0.15
    structured_purity: float = 1.3
    provisional_pause_ms: float = 0.0
    compact_pause_ms: float = 250.0
    compact_greeting_ms: float = 900.0
    compact_speech_share: float = 0.72
    lone_sound_ms: float = 1500.0

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            # The frozen dataclass keeps the checked value as a float.
            object.__setattr__(self, field.name, _checked_value(field.name, value))
        if self.beep_min_hz >= self.beep_max_hz:
            raise ValueError(
                "beep_min_hz must be below beep_max_hz, got "
                f"{self.beep_min_hz} and {self.beep_max_hz}"
            )

    def as_array(self) -> np.ndarray:
        """Return the parameters as the kernel's float32 vector."""
        vector = np.zeros(len(PARAM_INDEX), dtype=np.float32)
        for name, index in PARAM_INDEX.items():
            value = getattr(self, name)
            # The kernel compares powers, so it takes these as ratios.
            vector[index] = 10.0 ** (value / 10.0) if name in _POWER_RATIOS else value
        return vector


class VerdictKind(enum.Enum):
    """What answered the call."""

    HUMAN = 1
    MACHINE = 2
    NOTSURE = 3
    SILENCE = 4
    SIT = 5
    FAX = 6


class Cause(enum.Enum):
    """Reason for a verdict."""

    SHORT_GREETING = 1  # a short greeting, then a pause: a person waiting
    LONG_GREETING = 2  # speech or music longer than max_greeting_ms
    BEEP = 3  # a voicemail beep after a greeting
    EARLY_MEDIA = 4  # a long announcement before answer
    NO_AUDIO = 5  # nothing above min_level_db at all (RTP silence, no audio)
    DEAD_AIR = 6  # only line noise at a low level, no speech
    NOISE = 7  # loud sound that is neither speech nor a known tone
    TIMEOUT = 8  # no decision within max_analysis_ms
    RINGBACK = 9  # mostly tones (ringback) and no speech
    BUSY = 10  # busy or reorder tone cadence
    STREAM_END = 11  # the stream ended before a decision
    SIT_TONE = 12  # special information tone
    FAX_CED = 13  # 2100 Hz answer tone
    FAX_CNG = 14  # 1100 Hz calling tone
    SHORT_PAUSE = 15  # provisional: a short greeting, then provisional_pause_ms
    LONE_SOUND = 16  # one short tone after answer, then quiet: a person waiting


@dataclass(frozen=True)
class Verdict:
    """The one verdict of a call.

    Attributes
    ----------
    kind : VerdictKind
    cause : Cause
        SHORT_PAUSE marks a provisional HUMAN, see ``provisional``.
    decided_ms : int
        When it was decided (or last revised or confirmed), in ms from the
        start of the stream.
    beep_ms : int or None
        Onset of the voicemail beep, in ms from the start of the stream,
        once found (it may come after the verdict).
    sit_code : str or None
        "IC", "VC", "NC", "RO", "IO" (North American) or "E180" (generic).
    """

    kind: VerdictKind
    cause: Cause
    decided_ms: int
    beep_ms: int | None = None
    sit_code: str | None = None

    @property
    def provisional(self) -> bool:
        """Whether the analysis may still revise this verdict.

        Only with ``AnalysisParams.provisional_pause_ms`` set: a HUMAN
        given after that short pause stays provisional until it is
        confirmed (cause SHORT_GREETING) or revised to MACHINE.
        """
        return self.cause is Cause.SHORT_PAUSE


class EventKind(enum.Enum):
    """Kinds of events reported while a call is analysed."""

    SPEECH_START = 1
    SPEECH_END = 2
    SILENCE = 3
    TONE = 4
    BEEP = 5
    DTMF = 6
    SIT = 7
    FAX_CED = 8
    FAX_CNG = 9
    RINGBACK = 10
    BUSY = 11
    REORDER = 12
    VERDICT = 13


@dataclass(frozen=True)
class Event:
    """Something heard on the call.

    Attributes
    ----------
    kind : EventKind
    start_ms : int
        Onset in ms from the start of the stream.
    duration_ms : int
        Length so far (0 for points in time; SPEECH_START, VERDICT).
    frequency_hz : float or None
        TONE, BEEP, FAX_*: the tone's frequency; RINGBACK, BUSY, REORDER:
        the lower of the two.
    digit : str or None
        DTMF: the key, one of ``123A456B789C*0#D``.
    sit_code : str or None
        SIT: the code.
    verdict : VerdictKind or None
        VERDICT: the verdict (its cause is in ``cause``).
    cause : Cause or None
    """

    kind: EventKind
    start_ms: int
    duration_ms: int
    frequency_hz: float | None = None
    digit: str | None = None
    sit_code: str | None = None
    verdict: VerdictKind | None = None
    cause: Cause | None = None


_TONE_KINDS = {
    EventKind.TONE,
    EventKind.BEEP,
    EventKind.FAX_CED,
    EventKind.FAX_CNG,
    EventKind.RINGBACK,
    EventKind.BUSY,
    EventKind.REORDER,
}


def event_from_row(row) -> Event:
    """Build an Event from a kernel row: kind, start, duration, value, extra."""
    kind = EventKind(int(row[0]))
    start_ms, duration_ms, value, extra = (int(v) for v in row[1:])
    if kind in _TONE_KINDS:
        return Event(kind, start_ms, duration_ms, frequency_hz=value / 10.0)
    if kind is EventKind.DTMF:
        return Event(kind, start_ms, duration_ms, digit=DTMF_KEYS[value])
    if kind is EventKind.SIT:
        return Event(kind, start_ms, duration_ms, sit_code=SIT_CODES[value])
    if kind is EventKind.VERDICT:
        return Event(
            kind, start_ms, duration_ms, verdict=VerdictKind(value), cause=Cause(extra)
        )
    return Event(kind, start_ms, duration_ms)
