"""Streaming and batch facades over the analysis kernels.

Arguments are validated here, so the kernels can run without checks and
without the GIL.
"""

from __future__ import annotations

import numpy as np

from callsure.dsp._kernel import SIT_CODES, AnalysisKernel
from callsure.dsp.params import (
    AnalysisParams,
    Cause,
    Event,
    Verdict,
    VerdictKind,
    event_from_row,
)

__all__ = ["BatchAnalyzer", "StreamAnalyzer"]

SAMPLE_RATES_HZ = (8000, 16000)
FRAME_LENGTHS_MS = (10, 20, 30)
ENCODINGS = {"pcm16": 0, "ulaw": 1, "alaw": 2}
# Each slot takes about 2.3 kB (state, event ring, parameters), so the
# maximum costs about 230 MB.
MAX_STREAMS = 100_000


def _is_integer(value) -> bool:
    # bool is an int subclass, but True as a slot or a count is a mistake.
    return isinstance(value, (int, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


def _check_format(sample_rate_hz, encoding) -> None:
    if not _is_integer(sample_rate_hz) or sample_rate_hz not in SAMPLE_RATES_HZ:
        raise ValueError(
            f"sample_rate_hz must be the int 8000 or 16000, got {sample_rate_hz!r}"
        )
    if not isinstance(encoding, str) or encoding not in ENCODINGS:
        raise ValueError(
            f"encoding must be 'pcm16', 'ulaw' or 'alaw', got {encoding!r}"
        )


def _check_params(params) -> AnalysisParams:
    if params is None:
        return AnalysisParams()
    if not isinstance(params, AnalysisParams):
        raise ValueError(
            f"params must be an AnalysisParams, got {type(params).__name__}"
        )
    return params


class BatchAnalyzer:
    """Analyse up to ``max_streams`` calls, one frame of each per tick.

    Parameters
    ----------
    max_streams : int
        Number of slots; each open call uses one.
    sample_rate_hz : {8000, 16000}
    frame_ms : {10, 20, 30}
        Frame length of every call.
    encoding : {"pcm16", "ulaw", "alaw"}
        int16 linear PCM, or G.711 codes as uint8.

    Notes
    -----
    :meth:`process` runs every open slot's frame through the whole pipeline
    in one call that releases the GIL; state lives in C arrays between
    calls, and events wait in a fixed ring of 64 per slot (the oldest are
    dropped when nobody drains them) until :meth:`drain_events`. Times are
    in ms from the slot's :meth:`open`. After :meth:`finish` a slot is
    frozen, as :meth:`StreamAnalyzer.finish` freezes a stream, until
    :meth:`close`. Each slot takes about 2.3 kB. One BatchAnalyzer must
    not be used from two threads at once.
    """

    def __init__(self, max_streams, sample_rate_hz=8000, frame_ms=20, encoding="pcm16"):
        if not _is_integer(max_streams) or not 1 <= max_streams <= MAX_STREAMS:
            raise ValueError(
                f"max_streams must be an int from 1 to {MAX_STREAMS}, "
                f"got {max_streams!r}"
            )
        _check_format(sample_rate_hz, encoding)
        if not _is_integer(frame_ms) or frame_ms not in FRAME_LENGTHS_MS:
            raise ValueError(f"frame_ms must be the int 10, 20 or 30, got {frame_ms!r}")
        self.max_streams = int(max_streams)
        self.sample_rate_hz = int(sample_rate_hz)
        self.frame_ms = int(frame_ms)
        self.encoding = encoding
        self.samples_per_frame = self.sample_rate_hz * self.frame_ms // 1000
        self._dtype = np.int16 if encoding == "pcm16" else np.uint8
        self._kernel = AnalysisKernel(
            self.max_streams,
            sample_rate_hz,
            self.samples_per_frame,
            ENCODINGS[encoding],
        )
        self._open = np.zeros(self.max_streams, dtype=bool)
        self._finished = np.zeros(self.max_streams, dtype=bool)
        self._all_present = np.ones(self.max_streams, dtype=np.uint8)
        self._free = list(range(self.max_streams - 1, -1, -1))
        self.events_dropped = 0

    def open(self, params: AnalysisParams | None = None, answered: bool = True) -> int:
        """Start analysing a new call and return its slot.

        Parameters
        ----------
        params : AnalysisParams, optional
            Limits for this call; defaults when omitted.
        answered : bool
            False for early media (audio before 200 OK); call
            :meth:`mark_answered` when the call is answered.

        Raises
        ------
        RuntimeError
            When all slots are in use.
        """
        params = _check_params(params)
        if not self._free:
            raise RuntimeError(
                f"all {self.max_streams} slots are in use: close finished calls first"
            )
        slot = self._free.pop()
        self._kernel.open(slot, params.as_array(), bool(answered))
        self._open[slot] = True
        self._finished[slot] = False
        return slot

    def _check_slot(self, slot) -> int:
        if not _is_integer(slot) or not 0 <= slot < self.max_streams:
            raise ValueError(
                f"slot must be an int from 0 to {self.max_streams - 1}, got {slot!r}"
            )
        if not self._open[slot]:
            raise ValueError(f"slot {slot} is not open")
        return int(slot)

    def close(self, slot: int) -> None:
        """Free the slot; its pending events are discarded."""
        slot = self._check_slot(slot)
        self._kernel.close(slot)
        self._open[slot] = False
        self._free.append(slot)

    def mark_answered(self, slot: int) -> None:
        """Tell the analyser the call was answered (200 OK) now.

        Speech heard before is treated as network audio: an undecided call
        is judged afresh from here. A finished slot is left as it is.
        """
        slot = self._check_slot(slot)
        if not self._finished[slot]:
            self._kernel.mark_answered(slot)

    def set_playing(self, slot: int, playing: bool) -> None:
        """Tell the analyser whether the engine is playing audio into the call.

        Analysis goes on regardless; the silence and analysis time limits
        do not count time during which the engine played. A finished slot
        is left as it is.
        """
        slot = self._check_slot(slot)
        if not self._finished[slot]:
            self._kernel.set_playing(slot, bool(playing))

    def process(self, frames: np.ndarray, present: np.ndarray | None = None) -> None:
        """Analyse one frame of every open slot, releasing the GIL.

        Parameters
        ----------
        frames : ndarray, shape (max_streams, samples_per_frame)
            int16 for "pcm16", uint8 for G.711. Rows of closed and of
            finished slots are ignored.
        present : ndarray of bool, shape (max_streams,), optional
            Slots that received a frame this tick; the others are skipped
            (their time does not advance). All slots when omitted.
        """
        frames = self._check_frames(frames)
        if present is None:
            mask = self._all_present
        else:
            present = np.asarray(present)
            if present.dtype != np.bool_ or present.shape != (self.max_streams,):
                raise ValueError(
                    f"present must be a bool array of shape ({self.max_streams},), "
                    f"got {present.dtype} {present.shape}"
                )
            mask = np.ascontiguousarray(present).view(np.uint8)
        if self.encoding == "pcm16":
            self._kernel.process_pcm16(frames, mask)
        else:
            self._kernel.process_codes(frames, mask)

    def _check_frames(self, frames) -> np.ndarray:
        if not isinstance(frames, np.ndarray):
            raise ValueError(
                f"frames must be a numpy array, got {type(frames).__name__}"
            )
        if frames.dtype != self._dtype:
            raise ValueError(
                f"frames must be {np.dtype(self._dtype).name} for encoding "
                f"{self.encoding!r}, got {frames.dtype}"
            )
        expected = (self.max_streams, self.samples_per_frame)
        if frames.shape != expected:
            raise ValueError(
                f"frames must have shape {expected} ({self.frame_ms} ms at "
                f"{self.sample_rate_hz} Hz), got {frames.shape}"
            )
        return np.ascontiguousarray(frames)

    def finish(self, slot: int) -> Verdict:
        """Mark the end of the slot's stream and return its verdict.

        Open tone and speech segments are closed and a call still undecided
        gets NOTSURE (cause STREAM_END) or, when no speech was heard,
        SILENCE or NOTSURE as after the silence timeout. From then on
        :meth:`process` skips the slot: its state, elapsed time and verdict
        stay as they are, and its pending events can still be drained,
        until :meth:`close` frees it for the next :meth:`open`. Finishing
        a finished slot again only returns its verdict.
        """
        slot = self._check_slot(slot)
        if not self._finished[slot]:
            self._kernel.finish(slot)
            # The kernel's process loop skips closed streams, and close
            # keeps the stream's state, so this freezes the slot with no
            # work per tick.
            self._kernel.close(slot)
            self._finished[slot] = True
        return self.verdict(slot)

    def verdict(self, slot: int) -> Verdict | None:
        """Return the slot's verdict, or None while undecided."""
        verdict, cause, decided_ms, beep_ms, sit_code, _ = self._kernel.outcome(
            self._check_slot(slot)
        )
        if verdict == 0:
            return None
        return Verdict(
            kind=VerdictKind(verdict),
            cause=Cause(cause),
            decided_ms=decided_ms,
            beep_ms=beep_ms if beep_ms >= 0 else None,
            sit_code=SIT_CODES.get(sit_code),
        )

    def elapsed_ms(self, slot: int) -> int:
        """Return how much of the slot's stream has been analysed, in ms."""
        return self._kernel.outcome(self._check_slot(slot))[5]

    def drain_events(self, slot: int) -> list[Event]:
        """Return and forget the slot's pending events, oldest first.

        When more than 64 events piled up since the slot's last drain, the
        oldest were dropped; :attr:`events_dropped` then counts them (for
        the slot drained last).
        """
        rows, dropped = self._kernel.take_events(self._check_slot(slot))
        self.events_dropped = dropped
        return [event_from_row(row) for row in rows]


class StreamAnalyzer:
    """Analyse one call's audio as it arrives, in chunks of any length.

    Parameters
    ----------
    sample_rate_hz : {8000, 16000}
    encoding : {"pcm16", "ulaw", "alaw"}
    params : AnalysisParams, optional
    answered : bool
        False while the audio is early media; see :meth:`mark_answered`.

    Notes
    -----
    Feeding the audio whole or in chunks of any sizes gives the same
    events and verdict: audio is analysed in 10 ms blocks and the
    remainder of a chunk waits for the next one. Call :meth:`finish` at
    the end of the stream.
    """

    def __init__(
        self, sample_rate_hz=8000, encoding="pcm16", params=None, answered=True
    ):
        _check_format(sample_rate_hz, encoding)
        self.sample_rate_hz = int(sample_rate_hz)
        self.encoding = encoding
        self._batch = BatchAnalyzer(1, sample_rate_hz, 10, encoding)
        self._slot = self._batch.open(params, answered)
        self._dtype = np.dtype(np.int16 if encoding == "pcm16" else np.uint8)
        self._pending = np.zeros(0, dtype=self._dtype)
        self._pending_byte = b""
        self._finished = False

    def feed(self, audio) -> None:
        """Analyse more audio.

        Parameters
        ----------
        audio : bytes or ndarray, shape (n,)
            Little-endian int16 samples (bytes or int16 array) for "pcm16",
            G.711 codes (bytes or uint8 array) otherwise.
        """
        if self._finished:
            raise ValueError(
                "feed after finish: the stream has already ended; "
                "start a new StreamAnalyzer for the next call"
            )
        samples = self._as_samples(audio)
        if self._pending.size:
            samples = np.concatenate([self._pending, samples])
        kernel = self._batch._kernel
        if self.encoding == "pcm16":
            used = kernel.process_stream_pcm16(self._slot, samples)
        else:
            used = kernel.process_stream_codes(self._slot, samples)
        self._pending = samples[used:].copy()

    def _as_samples(self, audio) -> np.ndarray:
        if isinstance(audio, (bytes, bytearray, memoryview)):
            data = self._pending_byte + bytes(audio)
            if self._dtype.itemsize == 2:
                self._pending_byte = data[len(data) // 2 * 2 :]
                data = data[: len(data) // 2 * 2]
            return np.frombuffer(
                data, dtype="<i2" if self._dtype.itemsize == 2 else np.uint8
            ).astype(self._dtype)
        if not isinstance(audio, np.ndarray):
            raise ValueError(
                f"audio must be bytes or a numpy array, got {type(audio).__name__}"
            )
        if audio.dtype != self._dtype:
            raise ValueError(
                f"audio must be {self._dtype.name} for encoding {self.encoding!r}, "
                f"got {audio.dtype}"
            )
        if audio.ndim != 1:
            raise ValueError(f"audio must be one-dimensional, got shape {audio.shape}")
        return np.ascontiguousarray(audio)

    def mark_answered(self) -> None:
        """Tell the analyser the call was answered now (see BatchAnalyzer)."""
        self._batch.mark_answered(self._slot)

    def set_playing(self, playing: bool) -> None:
        """Tell the analyser whether the engine is playing audio into the call."""
        self._batch.set_playing(self._slot, playing)

    def finish(self) -> Verdict:
        """End the stream; return the final verdict (never None)."""
        if not self._finished:
            self._finished = True
            self._batch.finish(self._slot)
        return self._batch.verdict(self._slot)

    @property
    def verdict(self) -> Verdict | None:
        """The verdict, or None while undecided."""
        return self._batch.verdict(self._slot)

    @property
    def elapsed_ms(self) -> int:
        """Audio analysed so far, in ms."""
        return self._batch.elapsed_ms(self._slot)

    def drain_events(self) -> list[Event]:
        """Return and forget the pending events, oldest first."""
        return self._batch.drain_events(self._slot)
