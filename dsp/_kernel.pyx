# Call-progress analysis kernels: one nogil loop over every stream's frame
# per tick. The Python facade (callsure.dsp.analyzer) validates arguments;
# nothing here raises inside the loop.
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport fabsf
from libc.string cimport memset

import numpy as np

include "_g711_tables.pxi"
include "_state.pxi"
include "_features.pxi"
include "_tones.pxi"
include "_decide.pxi"
include "_analyse.pxi"

cdef enum:
    ENCODING_PCM16 = 0
    ENCODING_ULAW = 1
    ENCODING_ALAW = 2

# 23-tap half-band low-pass for 16 kHz -> 8 kHz, designed with
# scipy.signal.remez(23, [0, 3500, 4500, 8000], [1, 0], fs=16000): flat
# within 1 % to 3.4 kHz, so line noise stays white for the predictors.
# The even taps are zero and the centre tap is 0.5; these are the taps
# 1, 3, ..., 11 samples either side of the centre.
cdef float HALFBAND_ODD[6]
HALFBAND_ODD[:] = [0.316567, -0.100913, 0.055252, -0.034224, 0.02181, -0.021715]
cdef enum:
    DECIMATOR_HISTORY = 22

# Bytes of C state per slot, besides its event ring (64 x 5 int32) and
# its parameters (float32 each).
STATE_BYTES = sizeof(Stream)

# Codes shared with the Python facade, which builds its parameter vector
# and decodes events from these tables (tests check that they agree).
PARAM_INDEX = {
    "speech_margin_db": P_SPEECH_MARGIN_DB,
    "min_level_db": P_MIN_LEVEL_DB,
    "human_silence_ms": P_HUMAN_SILENCE_MS,
    "max_greeting_ms": P_MAX_GREETING_MS,
    "short_greeting_ms": P_SHORT_GREETING_MS,
    "long_pause_ms": P_LONG_PAUSE_MS,
    "min_word_ms": P_MIN_WORD_MS,
    "silence_timeout_ms": P_SILENCE_TIMEOUT_MS,
    "max_analysis_ms": P_MAX_ANALYSIS_MS,
    "tone_margin_db": P_TONE_MARGIN_DB,
    "tone_purity": P_TONE_PURITY,
    "beep_min_ms": P_BEEP_MIN_MS,
    "beep_quiet_ms": P_BEEP_QUIET_MS,
    "beep_min_hz": P_BEEP_MIN_HZ,
    "beep_max_hz": P_BEEP_MAX_HZ,
    "dtmf_frequency_tolerance": P_DTMF_FREQUENCY_TOLERANCE,
    "dtmf_normal_twist_db": P_DTMF_NORMAL_TWIST_RATIO,
    "dtmf_reverse_twist_db": P_DTMF_REVERSE_TWIST_RATIO,
    "dtmf_harmonic_db": P_DTMF_HARMONIC_RATIO,
    "dtmf_energy_share": P_DTMF_ENERGY_SHARE,
    "fax_ced_ms": P_FAX_CED_MS,
    "voicing_min": P_VOICING_MIN,
    "structured_voicing": P_STRUCTURED_VOICING,
    "structured_purity": P_STRUCTURED_PURITY,
    "provisional_pause_ms": P_PROVISIONAL_PAUSE_MS,
    "compact_pause_ms": P_COMPACT_PAUSE_MS,
    "compact_greeting_ms": P_COMPACT_GREETING_MS,
    "compact_speech_share": P_COMPACT_SPEECH_SHARE,
    "lone_sound_ms": P_LONE_SOUND_MS,
}
EVENT_CODES = {
    "SPEECH_START": EV_SPEECH_START,
    "SPEECH_END": EV_SPEECH_END,
    "SILENCE": EV_SILENCE,
    "TONE": EV_TONE,
    "BEEP": EV_BEEP,
    "DTMF": EV_DTMF,
    "SIT": EV_SIT,
    "FAX_CED": EV_FAX_CED,
    "FAX_CNG": EV_FAX_CNG,
    "RINGBACK": EV_RINGBACK,
    "BUSY": EV_BUSY,
    "REORDER": EV_REORDER,
    "VERDICT": EV_VERDICT,
}
VERDICT_CODES = {
    "HUMAN": V_HUMAN,
    "MACHINE": V_MACHINE,
    "NOTSURE": V_NOTSURE,
    "SILENCE": V_SILENCE,
    "SIT": V_SIT,
    "FAX": V_FAX,
}
CAUSE_CODES = {
    "SHORT_GREETING": C_SHORT_GREETING,
    "LONG_GREETING": C_LONG_GREETING,
    "BEEP": C_BEEP,
    "EARLY_MEDIA": C_EARLY_MEDIA,
    "NO_AUDIO": C_NO_AUDIO,
    "DEAD_AIR": C_DEAD_AIR,
    "NOISE": C_NOISE,
    "TIMEOUT": C_TIMEOUT,
    "RINGBACK": C_RINGBACK,
    "BUSY": C_BUSY,
    "STREAM_END": C_STREAM_END,
    "SIT_TONE": C_SIT_TONE,
    "FAX_CED": C_FAX_CED,
    "FAX_CNG": C_FAX_CNG,
    "SHORT_PAUSE": C_SHORT_PAUSE,
    "LONE_SOUND": C_LONE_SOUND,
}
SIT_CODES = {
    SIT_IC: "IC",
    SIT_VC: "VC",
    SIT_NC: "NC",
    SIT_RO: "RO",
    SIT_IO: "IO",
    SIT_E180: "E180",
}


cdef void reset_stream(Stream* st, int answered) noexcept nogil:
    cdef int i
    memset(st, 0, sizeof(Stream))
    st.is_open = 1
    st.answered = answered
    st.answer_block = 0 if answered else -1
    st.floor_db = 0.0
    for i in range(3):
        st.bank_block[i] = -10
        st.sit_start[i] = -1
        st.sit_end[i] = -1
    st.tone_start = -1
    st.dtmf_key = -1
    st.cng_last_start = -1
    st.onset = -1
    st.utterance_start = -1
    st.last_speech = -1
    st.verdict_block = -1
    st.beep_block = -1


cdef void load_block(Stream* st, const void* frame, Py_ssize_t offset, int encoding,
                     int decimate, float* out) noexcept nogil:
    """Decode one block's input samples to 80 floats at 8 kHz."""
    cdef const int16_t* pcm = <const int16_t*>frame
    cdef const uint8_t* codes = <const uint8_t*>frame
    cdef const int16_t* table = &ALAW_TABLE[0]
    cdef float wide[DECIMATOR_HISTORY + 2 * BLOCK]
    cdef int n, j, offset_tap, count = BLOCK * (2 if decimate else 1)
    cdef float* dest = out
    cdef float tap
    if decimate:
        dest = &wide[DECIMATOR_HISTORY]
    if encoding == ENCODING_ULAW:
        table = &ULAW_TABLE[0]
    if encoding == ENCODING_PCM16:
        for n in range(count):
            dest[n] = pcm[offset + n]
    else:
        for n in range(count):
            dest[n] = table[codes[offset + n]]
    if not decimate:
        return

    # Output n is centred on wide[2n + 11]; tap by tap over all outputs,
    # so each pass is a plain vectorisable loop.
    for j in range(DECIMATOR_HISTORY):
        wide[j] = st.decimator[j]
    for n in range(BLOCK):
        out[n] = 0.5 * wide[2 * n + 11]
    for j in range(6):
        tap = HALFBAND_ODD[j]
        offset_tap = 2 * j + 1
        for n in range(BLOCK):
            out[n] += tap * (wide[2 * n + 11 - offset_tap] + wide[2 * n + 11 + offset_tap])
    for j in range(DECIMATOR_HISTORY):
        st.decimator[j] = wide[2 * BLOCK + j]


cdef class AnalysisKernel:
    """State of max_streams calls, processed one frame per call per tick."""

    cdef Stream* streams
    cdef int max_streams
    cdef int encoding
    cdef int decimate
    cdef int blocks_per_frame
    cdef public object params
    cdef public object events
    cdef float[:, ::1] params_view
    cdef int32_t[:, :, ::1] events_view

    def __cinit__(self, int max_streams, int sample_rate_hz, int samples_per_frame,
                  int encoding):
        self.streams = <Stream*>PyMem_Malloc(max_streams * sizeof(Stream))
        if self.streams == NULL:
            raise MemoryError(f"cannot allocate state for {max_streams} streams")
        memset(self.streams, 0, max_streams * sizeof(Stream))
        self.max_streams = max_streams
        self.encoding = encoding
        self.decimate = sample_rate_hz == 16000
        self.blocks_per_frame = samples_per_frame // (BLOCK * (2 if self.decimate else 1))
        self.params = np.zeros((max_streams, N_PARAMS), dtype=np.float32)
        self.events = np.zeros((max_streams, EVENT_CAPACITY, EVENT_FIELDS), dtype=np.int32)
        self.params_view = self.params
        self.events_view = self.events

    def __dealloc__(self):
        PyMem_Free(self.streams)

    def open(self, int slot, const float[::1] params, bint answered):
        """Reset slot for a new call with the given parameter vector."""
        reset_stream(&self.streams[slot], answered)
        self.params_view[slot, :] = params

    def close(self, int slot):
        self.streams[slot].is_open = 0

    def mark_answered(self, int slot):
        cdef Stream* st = &self.streams[slot]
        st.answered = 1
        st.answer_block = st.block
        st.playing_blocks = 0
        st.limit_blocks = 0
        if st.verdict == V_NONE:
            # Speech heard before answer was network audio; judge the
            # called party from here on.
            st.onset = -1
            st.in_utterance = 0
            st.speech_run = 0
            st.silence_run = 0
            st.sound_blocks = 0
            st.loud_blocks = 0
            st.active_blocks = 0
            st.tone_blocks = 0
            st.answer_tones = 0
            st.answer_tone_ms = 0

    def set_playing(self, int slot, bint playing):
        self.streams[slot].playing = playing

    def finish(self, int slot):
        """Mark the end of slot's stream: flush segments, force a verdict."""
        cdef Stream* st = &self.streams[slot]
        if st.block > 0:
            finish_stream(st, &self.events_view[slot, 0, 0], &self.params_view[slot, 0])
        elif st.verdict == V_NONE:
            st.block = 0
            classify_no_speech(st, &self.events_view[slot, 0, 0], C_NOISE,
                               &self.params_view[slot, 0])

    def outcome(self, int slot):
        """Return (verdict, cause, verdict_ms, beep_ms, sit_code, elapsed_ms)."""
        cdef Stream* st = &self.streams[slot]
        return (
            st.verdict,
            st.cause,
            (st.verdict_block + 1) * 10 if st.verdict != V_NONE else -1,
            st.beep_block * 10 if st.beep_block >= 0 else -1,
            st.sit_code,
            st.block * 10,
        )

    def take_events(self, int slot):
        """Return slot's pending events as an (n, 5) int32 array and the drop count."""
        cdef Stream* st = &self.streams[slot]
        cdef int n = st.event_count
        order = [(st.event_head + i) % EVENT_CAPACITY for i in range(n)]
        taken = self.events[slot, order].copy()
        dropped = st.events_dropped
        st.event_head = 0
        st.event_count = 0
        st.events_dropped = 0
        return taken, dropped

    def process_pcm16(self, const int16_t[:, ::1] frames, const unsigned char[::1] present):
        with nogil:
            self._process(&frames[0, 0], frames.shape[1], &present[0])

    def process_codes(self, const uint8_t[:, ::1] frames,
                      const unsigned char[::1] present):
        with nogil:
            self._process(&frames[0, 0], frames.shape[1], &present[0])

    def process_stream_pcm16(self, int slot, const int16_t[::1] samples):
        """Analyse whole blocks of one stream's samples; return samples used."""
        cdef Py_ssize_t used = 0
        if samples.shape[0] == 0:
            return 0
        with nogil:
            used = self._process_stream(slot, &samples[0], samples.shape[0])
        return used

    def process_stream_codes(self, int slot, const uint8_t[::1] samples):
        """Analyse whole blocks of one stream's G.711 codes; return codes used."""
        cdef Py_ssize_t used = 0
        if samples.shape[0] == 0:
            return 0
        with nogil:
            used = self._process_stream(slot, &samples[0], samples.shape[0])
        return used

    cdef Py_ssize_t _process_stream(self, int slot, const void* samples,
                                    Py_ssize_t length) noexcept nogil:
        cdef Stream* st = &self.streams[slot]
        cdef float x[BLOCK]
        cdef Py_ssize_t step = BLOCK * (2 if self.decimate else 1)
        cdef Py_ssize_t offset = 0
        while offset + step <= length:
            load_block(st, samples, offset, self.encoding, self.decimate, x)
            analyse_block(st, x, &self.params_view[slot, 0],
                          &self.events_view[slot, 0, 0])
            offset += step
        return offset

    cdef void _process(self, const void* frames, Py_ssize_t row_length,
                       const unsigned char* present) noexcept nogil:
        cdef int slot, b
        cdef Stream* st
        cdef float x[BLOCK]
        cdef Py_ssize_t step = BLOCK * (2 if self.decimate else 1)
        cdef const void* row
        cdef Py_ssize_t item = 2 if self.encoding == ENCODING_PCM16 else 1
        for slot in range(self.max_streams):
            st = &self.streams[slot]
            if not st.is_open or not present[slot]:
                continue
            row = <const char*>frames + slot * row_length * item
            for b in range(self.blocks_per_frame):
                load_block(st, row, b * step, self.encoding, self.decimate, x)
                analyse_block(st, x, &self.params_view[slot, 0],
                              &self.events_view[slot, 0, 0])


def block_features_of(const int16_t[::1] samples):
    """Return per-block features of 8 kHz PCM as an (n, 6) float32 array.

    For tuning and tests: level_db, purity, tone_hz, dual_purity, voicing,
    energy of each 10 ms block.
    """
    cdef Py_ssize_t n_blocks = samples.shape[0] // BLOCK, b
    cdef int n
    cdef float x[BLOCK]
    cdef BlockFeatures f
    out = np.zeros((n_blocks, 6), dtype=np.float32)
    cdef float[:, ::1] view = out
    for b in range(n_blocks):
        for n in range(BLOCK):
            x[n] = samples[b * BLOCK + n]
        block_features(x, 0.0, &f)
        view[b, 0] = f.level_db
        view[b, 1] = f.purity
        view[b, 2] = f.tone_hz
        view[b, 3] = f.dual_purity
        view[b, 4] = f.voicing
        view[b, 5] = f.energy
    return out
