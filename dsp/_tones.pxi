# Tone detectors: DTMF (ITU-T Q.24), single-tone segments (beeps, SIT,
# fax), and the dual call progress tones (ringback, busy, reorder).


# 5 dB as a power ratio.
cdef float DTMF_RELATIVE_PEAK = 3.16


cdef int dtmf_key(Stream* st, const float* x, const float* params) noexcept nogil:
    """Return the DTMF key index (row * 4 + column) in this block, or -1.

    Needs the bank on this block and the one before, because the frequency
    check uses the phase advance between them.
    """
    cdef int k, row = BANK_ROW, col = BANK_COL
    cdef float row_power, col_power, row_hz, col_hz, tolerance
    for k in range(BANK_ROW + 1, BANK_ROW + 4):
        if bank_power(st, 0, k) > bank_power(st, 0, row):
            row = k
    for k in range(BANK_COL + 1, BANK_COL + 4):
        if bank_power(st, 0, k) > bank_power(st, 0, col):
            col = k
    row_power = bank_power(st, 0, row)
    col_power = bank_power(st, 0, col)

    # Talk-off: every other tone of each group at least 5 dB below the
    # strongest. A tone 1.5 % off leaks into its 10 ms neighbour at
    # -6.3 dB, so this cannot be stricter.
    for k in range(BANK_ROW, BANK_ROW + 4):
        if k != row and bank_power(st, 0, k) * DTMF_RELATIVE_PEAK > row_power:
            return -1
    for k in range(BANK_COL, BANK_COL + 4):
        if k != col and bank_power(st, 0, k) * DTMF_RELATIVE_PEAK > col_power:
            return -1

    # Talk-off: the two tones must carry most of the block's energy.
    if row_power + col_power < params[P_DTMF_ENERGY_SHARE] * st.bank_energy[0]:
        return -1
    # Twist: the low group may exceed the high group by the normal twist,
    # the high group the low group by the reverse twist (the convention of
    # the DTMF receivers in Asterisk's dsp.c and in spandsp).
    if row_power > col_power * params[P_DTMF_NORMAL_TWIST_RATIO]:
        return -1
    if col_power > row_power * params[P_DTMF_REVERSE_TWIST_RATIO]:
        return -1

    # Frequency deviation (Q.24: accept 1.5 %, reject beyond 3.5 %).
    if st.bank_block[1] != st.bank_block[0] - 1:
        return -1
    tolerance = params[P_DTMF_FREQUENCY_TOLERANCE]
    row_hz = bank_frequency(st, row)
    col_hz = bank_frequency(st, col)
    if fabsf(row_hz - BANK_HZ[row]) > tolerance * BANK_HZ[row]:
        return -1
    if fabsf(col_hz - BANK_HZ[col]) > tolerance * BANK_HZ[col]:
        return -1

    # Talk-off: voice has harmonics, DTMF tones have none. A row tone's
    # second harmonic can fall within 71 Hz of a column tone, whose leakage
    # into a 10 ms block would mask it, so it is checked only when clear.
    if (fabsf(2.0 * row_hz - col_hz) > 150.0
            and goertzel_power(x, 2.0 * row_hz)
            > row_power * params[P_DTMF_HARMONIC_RATIO]):
        return -1
    if goertzel_power(x, 2.0 * col_hz) > col_power * params[P_DTMF_HARMONIC_RATIO]:
        return -1
    return (row - BANK_ROW) * 4 + (col - BANK_COL)


cdef int progress_kind(const Stream* st) noexcept nogil:
    """Classify the last 30 ms as ringback (440+480), busy (480+620), or none."""
    cdef float energy, p440, p480, p620
    if (st.bank_block[2] != st.bank_block[0] - 2
            or not (st.bank_full[0] and st.bank_full[1] and st.bank_full[2])):
        return PROG_NONE
    energy = (st.bank_energy[0] + st.bank_energy[1] + st.bank_energy[2]) / 3.0
    p440 = bank_power_long(st, BANK_440)
    p480 = bank_power_long(st, BANK_480)
    p620 = bank_power_long(st, BANK_620)
    # Both tones present, neither more than 10 dB above the other, together
    # most of the energy: a single tone near either is not a dual tone.
    if p440 + p480 > 0.6 * energy and p440 > 0.1 * p480 and p480 > 0.1 * p440:
        return PROG_RINGBACK
    if p480 + p620 > 0.6 * energy and p480 > 0.1 * p620 and p620 > 0.1 * p480:
        return PROG_BUSY
    return PROG_NONE


cdef float refine_tone_hz(const Stream* st, float hz) noexcept nogil:
    """Replace the predictor's estimate by the bank's phase estimate nearby.

    The order-2 predictor is biased toward lower frequencies by noise; the
    phase advance of a bank tone within 45 Hz is not.
    """
    cdef int k
    if (st.bank_block[1] != st.bank_block[0] - 1
            or not (st.bank_full[0] and st.bank_full[1])):
        return hz
    for k in range(BANK_SIT, BANK_CED + 1):
        if fabsf(hz - BANK_HZ[k]) < 45.0:
            return bank_frequency(st, k)
    return hz


cdef int sit_code(const Stream* st) noexcept nogil:
    """Return the SIT code of the last three tone segments, or 0.

    Generic ITU-T E.180 form: 950, 1400, 1800 Hz (+-50 Hz), 330 +- 70 ms
    each; North American codes (Telcordia SR-2275) are recognised from the
    frequency (low/high) and length (274/380 ms) of the first two segments.
    The limits allow 5 Hz and 20 ms more for the measurement.
    """
    cdef int i
    cdef float low_hz[3]
    cdef float duration_ms[3]
    cdef int high1, high2, long1, long2
    low_hz[:] = [950.0, 1400.0, 1800.0]
    for i in range(3):
        if st.sit_start[i] < 0:
            return 0
        duration_ms[i] = (st.sit_end[i] - st.sit_start[i] + 1) * 10.0
        if fabsf(st.sit_hz[i] - low_hz[i]) > 55.0:
            return 0
        if duration_ms[i] < 240.0 or duration_ms[i] > 420.0:
            return 0
    # Segments follow each other with at most 40 ms of transition.
    if st.sit_start[1] - st.sit_end[0] > 4 or st.sit_start[2] - st.sit_end[1] > 4:
        return 0

    high1 = _nearest(st.sit_hz[0], 913.8, 985.2)
    high2 = _nearest(st.sit_hz[1], 1370.6, 1428.5)
    if high1 < 0 or high2 < 0 or fabsf(st.sit_hz[2] - 1776.7) > 1776.7 * 0.015:
        return SIT_E180
    long1 = duration_ms[0] > 327.0
    long2 = duration_ms[1] > 327.0
    if not high1 and not long1 and not high2 and not long2:
        return SIT_IC
    if high1 and long1 and not high2 and not long2:
        return SIT_VC
    if long1 and long2 and high1 == high2:
        return SIT_NC
    if not long1 and long2 and high1 != high2:
        return SIT_RO
    if not high1 and long1 and high2 and not long2:
        return SIT_IO
    return SIT_E180


cdef inline int _nearest(float hz, float low, float high) noexcept nogil:
    """1 if hz is within 1.5 % of high, 0 if of low, else -1."""
    if fabsf(hz - low) <= 0.015 * low:
        return 0
    if fabsf(hz - high) <= 0.015 * high:
        return 1
    return -1
