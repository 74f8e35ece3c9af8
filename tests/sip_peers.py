"""Test phones: the pjsua2 phone banks of ``callsure.actors.sip.phones``.

Each ``PhoneBank`` is a pjsua2 endpoint process on 127.0.0.1 answering for
many numbers (answer and play a WAV, play early media after a 183, reject
with a code, ring forever, record what it hears, send RFC 4733 digits,
place calls); see that
module's docstring. ``callsure demo`` uses the same banks, so the tests
and the demo exercise one implementation.
"""

from __future__ import annotations

from callsure.actors.sip.phones import PhoneBank, concatenate_wavs, pad_wav, wav_rms

__all__ = ["PhoneBank", "concatenate_wavs", "pad_wav", "wav_rms"]
