# Per-stream state of the analysis kernels and the codes they share with
# the Python facade (exported by _kernel.pyx as PARAM_INDEX, EVENT_CODES,
# VERDICT_CODES, CAUSE_CODES and SIT_CODES).
from libc.stdint cimport int32_t, int64_t

# Analysis runs on 10 ms blocks at 8 kHz whatever the frame length, so
# results do not depend on how the audio was cut into frames.
cdef enum:
    BLOCK = 80
    N_BANK = 16
    EVENT_CAPACITY = 64
    EVENT_FIELDS = 5
    FLOOR_SUBWINDOW_BLOCKS = 40

# Tone bank rows: DTMF rows and columns (ITU-T Q.23), the three E.180 SIT
# bands (North American SIT frequencies lie within 36 Hz of these centres
# and are told apart by the phase-derived frequency), fax CNG and CED,
# and the precise-tone-plan call progress tones.
cdef float BANK_HZ[N_BANK]
BANK_HZ[:] = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0,
              950.0, 1400.0, 1800.0, 1100.0, 2100.0, 440.0, 480.0, 620.0]
cdef enum:
    BANK_ROW = 0
    BANK_COL = 4
    BANK_SIT = 8
    BANK_CNG = 11
    BANK_CED = 12
    BANK_440 = 13
    BANK_480 = 14
    BANK_620 = 15

# Parameter indices; the names match dsp.params.AnalysisParams fields.
# The DTMF twist and harmonic limits arrive as power ratios, converted
# from dB by AnalysisParams.as_array.
cdef enum:
    P_SPEECH_MARGIN_DB = 0
    P_MIN_LEVEL_DB = 1
    P_HUMAN_SILENCE_MS = 2
    P_MAX_GREETING_MS = 3
    P_SHORT_GREETING_MS = 4
    P_LONG_PAUSE_MS = 5
    P_MIN_WORD_MS = 6
    P_SILENCE_TIMEOUT_MS = 7
    P_MAX_ANALYSIS_MS = 8
    P_TONE_MARGIN_DB = 9
    P_TONE_PURITY = 10
    P_BEEP_MIN_MS = 11
    P_BEEP_QUIET_MS = 12
    P_BEEP_MIN_HZ = 13
    P_BEEP_MAX_HZ = 14
    P_DTMF_FREQUENCY_TOLERANCE = 15
    P_DTMF_NORMAL_TWIST_RATIO = 16
    P_DTMF_REVERSE_TWIST_RATIO = 17
    P_DTMF_HARMONIC_RATIO = 18
    P_DTMF_ENERGY_SHARE = 19
    P_FAX_CED_MS = 20
    P_VOICING_MIN = 21
    P_STRUCTURED_VOICING = 22
    P_STRUCTURED_PURITY = 23
    P_PROVISIONAL_PAUSE_MS = 24
    P_COMPACT_PAUSE_MS = 25
    P_COMPACT_GREETING_MS = 26
    P_COMPACT_SPEECH_SHARE = 27
    P_LONE_SOUND_MS = 28
    N_PARAMS = 29

# Event kinds.
cdef enum:
    EV_SPEECH_START = 1
    EV_SPEECH_END = 2
    EV_SILENCE = 3
    EV_TONE = 4
    EV_BEEP = 5
    EV_DTMF = 6
    EV_SIT = 7
    EV_FAX_CED = 8
    EV_FAX_CNG = 9
    EV_RINGBACK = 10
    EV_BUSY = 11
    EV_REORDER = 12
    EV_VERDICT = 13

# Verdicts and causes.
cdef enum:
    V_NONE = 0
    V_HUMAN = 1
    V_MACHINE = 2
    V_NOTSURE = 3
    V_SILENCE = 4
    V_SIT = 5
    V_FAX = 6

cdef enum:
    C_SHORT_GREETING = 1
    C_LONG_GREETING = 2
    C_BEEP = 3
    C_EARLY_MEDIA = 4
    C_NO_AUDIO = 5
    C_DEAD_AIR = 6
    C_NOISE = 7
    C_TIMEOUT = 8
    C_RINGBACK = 9
    C_BUSY = 10
    C_STREAM_END = 11
    C_SIT_TONE = 12
    C_FAX_CED = 13
    C_FAX_CNG = 14
    C_SHORT_PAUSE = 15
    C_LONE_SOUND = 16

# SIT codes.
cdef enum:
    SIT_IC = 1
    SIT_VC = 2
    SIT_NC = 3
    SIT_RO = 4
    SIT_IO = 5
    SIT_E180 = 6

# What the single-tone segment in progress turned out to be.
cdef enum:
    TONE_UNDECIDED = 0
    TONE_BEEP = 1
    TONE_FAX_CED = 2
    TONE_PROGRESS = 3

# Progress tone kinds.
cdef enum:
    PROG_NONE = 0
    PROG_RINGBACK = 1
    PROG_BUSY = 2


# The noise floor rises by at most 3 dB per second.
cdef float FLOOR_RISE_DB_PER_BLOCK = 0.03
# Line noise this far above min_level_db (52 dB, -35 dBFS, by default) is
# not dead air but a fault on the line: such calls are NOTSURE (NOISE).
cdef float LOUD_NOISE_DB = 22.0


cdef struct BlockFeatures:
    float energy        # mean square of the block minus its mean, int16 units
    float level_db      # 10 log10(energy + 1)
    float purity        # order-2 prediction residual / energy: ~0 for one tone,
                        # ~2 for white noise; line noise taken out
    float raw_purity    # the same without the noise correction
    float tone_hz       # frequency of the order-2 predictor's pole
    float dual_purity   # symmetric order-4 residual / energy: ~0 for two tones
    float voicing       # lag-1 autocorrelation coefficient


cdef struct Stream:
    int is_open
    int answered
    int playing
    int64_t block
    int64_t answer_block
    float decimator[22]     # last 16 kHz input samples, for the half-band filter

    # Level tracking: minimum statistics over four sub-windows.
    float floor_db
    float noise_power       # mean power of noise blocks, int16 units squared
    float floor_minima[4]
    float floor_current
    float floor_energy[2]   # energies of the two sounding blocks before
    int floor_count
    int64_t active_blocks
    int64_t sound_blocks
    int64_t loud_blocks
    int64_t tone_blocks
    int64_t answer_tones    # single tones reported since answer
    int64_t answer_tone_ms  # and their total length
    int64_t playing_blocks
    int64_t limit_blocks    # blocks counted toward the time limits

    # Tone bank of the last three blocks it ran on (newest first).
    float bank_re[3][N_BANK]
    float bank_im[3][N_BANK]
    float bank_energy[3]
    int64_t bank_block[3]
    int bank_full[3]        # 0 when only the DTMF tones were computed

    # Single-tone segment in progress.
    int64_t tone_start
    int64_t tone_last
    float tone_hz
    float tone_db_min
    float tone_db_max
    int tone_count
    int tone_quiet_before
    int tone_outcome

    # Last three finished tone segments, for SIT.
    float sit_hz[3]
    int64_t sit_start[3]
    int64_t sit_end[3]

    # Dual progress tones.
    int prog_kind
    int64_t prog_start
    int64_t prog_last
    int busy_count

    # DTMF.
    int dtmf_key
    int dtmf_run
    int dtmf_miss
    int dtmf_active
    int64_t dtmf_start

    # Fax CNG.
    int64_t cng_last_start

    # Speech structure.
    int64_t onset
    int64_t utterance_start
    int64_t last_speech
    int64_t greeting_speech_blocks  # speech blocks from onset to last_speech
    int in_utterance
    int speech_run
    int silence_run
    int quiet_run
    int last_quiet_run
    int64_t last_quiet_end

    # Outcome.
    int verdict
    int cause
    int64_t verdict_block
    int64_t beep_block
    int sit_code

    # Event ring (storage lives in the kernel's event array).
    int event_head
    int event_count
    int64_t events_dropped
