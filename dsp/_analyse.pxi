# Per-block driver: level and noise floor, then tones, speech and the
# time limits, in that order for every 10 ms block.


cdef void track_floor(Stream* st, float level_db) noexcept nogil:
    cdef int i
    cdef float floor_db
    cdef int first = st.floor_count == 0 and st.floor_current == 0.0
    if first:
        # NOTE: a stream that opens with speech, or with digital silence
        # and then speech, takes its first words for the floor until a
        # pause shows the real one; starting from a fixed quiet level
        # instead cost accuracy on music and loud line noise.
        for i in range(4):
            st.floor_minima[i] = level_db
        st.floor_current = level_db
    if level_db < st.floor_current:
        st.floor_current = level_db
    st.floor_count += 1
    if st.floor_count == FLOOR_SUBWINDOW_BLOCKS:
        for i in range(3):
            st.floor_minima[i] = st.floor_minima[i + 1]
        st.floor_minima[3] = st.floor_current
        st.floor_current = level_db
        st.floor_count = 0
    floor_db = st.floor_current
    for i in range(4):
        if st.floor_minima[i] < floor_db:
            floor_db = st.floor_minima[i]
    # Rising slowly keeps music and long greetings, which never dip to the
    # line's noise, from becoming the floor before they are judged.
    if floor_db > st.floor_db + FLOOR_RISE_DB_PER_BLOCK and not first:
        floor_db = st.floor_db + FLOOR_RISE_DB_PER_BLOCK
    st.floor_db = floor_db


cdef inline int bank_wanted(float hz) noexcept nogil:
    """Whether a single tone at hz (order-2 estimate) needs the tone bank.

    Only near a frequency it refines (SIT bands, fax CNG and CED) or where
    ringback's or busy's two close tones look like one (their means, 460
    and 550 Hz).
    """
    return ((400.0 <= hz <= 640.0) or (880.0 <= hz <= 1020.0)
            or (1040.0 <= hz <= 1160.0) or (1330.0 <= hz <= 1470.0)
            or (1730.0 <= hz <= 1870.0) or (2040.0 <= hz <= 2160.0))


cdef void track_level(Stream* st, const BlockFeatures* f,
                      const float* params) noexcept nogil:
    """Update the noise floor, the noise power and the level counters."""
    cdef float smoothed_energy
    # Noise floor: the minimum block level over the last 1.2-1.6 s
    # (minimum statistics), so speech pauses reveal it and loud steady
    # noise becomes the floor within 1.6 s. Digital silence (lost frames
    # played out as zeros) does not count.
    if f.level_db > 6.0:
        # The floor follows the mean level of the last three sounding
        # blocks, so one block that is partly a lost frame (zeros) cannot
        # drag it down; pauses between words last longer than 30 ms.
        smoothed_energy = (f.energy + st.floor_energy[0] + st.floor_energy[1]) / 3.0
        if st.floor_energy[1] == 0.0:
            smoothed_energy = f.energy
        st.floor_energy[1] = st.floor_energy[0]
        st.floor_energy[0] = f.energy
        track_floor(st, <float>10.0 * log10f(smoothed_energy + <float>1.0))
        # The mean noise power, from blocks near the floor (which, as a
        # minimum, lies 2-3 dB below the mean of 10 ms noise blocks) that
        # are as unpredictable as white noise: a tone that opens the
        # stream is its own floor but not noise.
        if f.level_db < st.floor_db + 4.0 and f.raw_purity > 1.0:
            if st.noise_power == 0.0:
                st.noise_power = f.energy
            st.noise_power += 0.05 * (f.energy - st.noise_power)
    if f.level_db > params[P_MIN_LEVEL_DB]:
        st.sound_blocks += 1
    if f.level_db > params[P_MIN_LEVEL_DB] + LOUD_NOISE_DB:
        st.loud_blocks += 1
    if st.playing:
        st.playing_blocks += 1


cdef inline int loud_for_tone(const Stream* st, const BlockFeatures* f,
                              const float* params) noexcept nogil:
    """Return 1 if the block is loud enough to be taken for a tone."""
    # A tone that opens the stream is its own floor, so a tone also counts
    # when it is clearly above the minimum level.
    return f.level_db > params[P_MIN_LEVEL_DB] and (
        f.level_db > st.floor_db + params[P_TONE_MARGIN_DB]
        or f.level_db > params[P_MIN_LEVEL_DB] + params[P_TONE_MARGIN_DB])


cdef int detect_tones(Stream* st, const float* x, const BlockFeatures* f,
                      int loud, const float* params, int32_t* ring,
                      int* progress) noexcept nogil:
    """Run the tone detectors on the block; return 1 if it is a tone.

    loud is loud_for_tone of the block: only then are f's purity,
    tone_hz and dual_purity filled in. Sets progress to the dual call
    progress tone heard, if any.
    """
    cdef int single = 0, dual = 0, key = -1, steady, full_bank, age
    cdef float hz = f.tone_hz
    progress[0] = PROG_NONE

    if loud:
        # Two steady tones leave a far smaller residual than vowels do;
        # the stricter limit keeps the bank off most speech blocks. Two
        # tones fit the order-4 predictor far better than the order-2 one,
        # which still fits DTMF pairs loosely (residual 0.02-0.05) and
        # ringback or busy pairs closely (below 0.01: these look like one
        # tone at their mean frequency, see bank_wanted).
        dual = (f.dual_purity < 0.4 * params[P_TONE_PURITY]
                and f.purity > 0.01 and f.dual_purity < 0.3 * f.purity)
        # One tone as far as the order-2 predictor can tell. Noise makes
        # the order-4 test above misfire now and then on a single tone,
        # so the tone tracker ignores it; it only spares the bank.
        single = f.purity < params[P_TONE_PURITY] and 200.0 < f.tone_hz < 3400.0

    # The DTMF half of the bank also runs on blocks clearly above the floor
    # whose lag-1 correlation is below 0.85, so DTMF is heard at low SNR
    # where the predictors cannot tell two tones from noise. DTMF pairs
    # stay below 0.82 even with the low group 8 dB up; voiced speech, most
    # of a call's sound, is above.
    full_bank = dual or (single and bank_wanted(f.tone_hz))
    if full_bank or (
            f.level_db > st.floor_db + params[P_TONE_MARGIN_DB]
            and f.level_db > params[P_MIN_LEVEL_DB] and f.voicing < 0.85):
        for age in range(2, 0, -1):
            st.bank_re[age] = st.bank_re[age - 1]
            st.bank_im[age] = st.bank_im[age - 1]
            st.bank_energy[age] = st.bank_energy[age - 1]
            st.bank_block[age] = st.bank_block[age - 1]
            st.bank_full[age] = st.bank_full[age - 1]
        if full_bank:
            tone_bank(x, st.bank_re[0], st.bank_im[0])
        else:
            dtmf_bank(x, st.bank_re[0], st.bank_im[0])
        st.bank_energy[0] = f.energy
        st.bank_block[0] = st.block
        st.bank_full[0] = full_bank
        key = dtmf_key(st, x, params)
        progress[0] = progress_kind(st)
        if single:
            hz = refine_tone_hz(st, hz)

    track_dtmf(st, ring, key)
    track_progress(st, ring, progress[0])
    steady = track_tone(st, ring, single and key < 0 and progress[0] == PROG_NONE, hz,
                        f.level_db, params)
    return steady or key >= 0 or progress[0] != PROG_NONE


cdef void detect_speech(Stream* st, const BlockFeatures* f, int tone_block,
                        const float* params, int32_t* ring) noexcept nogil:
    """Classify the block as speech, noise or quiet and follow the words."""
    cdef int active, structured, speech
    # Speech (or music): loud enough above the floor and voiced enough to
    # rule out white line noise; or, when the floor is no guide because the
    # stream opened with quiet music, clearly predictable sound (voiced,
    # low order-2 residual) above the absolute minimum level. White line
    # noise is neither.
    active = (f.level_db > st.floor_db + params[P_SPEECH_MARGIN_DB]
              and f.level_db > params[P_MIN_LEVEL_DB])
    structured = (f.level_db > params[P_MIN_LEVEL_DB] + 6.0
                  and f.voicing >= params[P_STRUCTURED_VOICING]
                  and f.raw_purity < params[P_STRUCTURED_PURITY])
    speech = not tone_block and (
        (active and f.voicing >= params[P_VOICING_MIN]) or structured)
    if active and not speech and not tone_block:
        st.active_blocks += 1
    track_speech(st, ring, speech, params)

    if active or tone_block or speech:
        if st.quiet_run > 0:
            st.last_quiet_run = st.quiet_run
            st.last_quiet_end = st.block
        st.quiet_run = 0
    else:
        st.quiet_run += 1
        if st.quiet_run == <int>(params[P_HUMAN_SILENCE_MS] / 10.0):
            emit(st, ring, EV_SILENCE, st.block - st.quiet_run + 1, st.quiet_run * 10, 0, 0)


cdef void check_limits(Stream* st, int progress, const float* params,
                       int32_t* ring) noexcept nogil:
    """Decide a call that reached the silence or analysis time limit."""
    cdef int64_t heard
    # Time limits count from answer, pause while the engine plays, and
    # start again after ringback or busy tones: a call still ringing
    # (forwarded, or answered by a network box) is not yet dead air.
    if progress != PROG_NONE:
        st.limit_blocks = 0
    elif st.answered and not st.playing:
        st.limit_blocks += 1
    if st.verdict == V_NONE and st.answered:
        heard = st.limit_blocks * 10
        if st.onset < 0 and heard >= params[P_SILENCE_TIMEOUT_MS]:
            classify_no_speech(st, ring, C_NOISE, params)
        elif heard >= params[P_MAX_ANALYSIS_MS]:
            decide(st, ring, V_NOTSURE, C_TIMEOUT)


cdef void analyse_block(Stream* st, float* x, const float* params,
                        int32_t* ring) noexcept nogil:
    """Run every detector on one 10 ms block of 80 samples at 8 kHz."""
    cdef BlockFeatures f
    cdef int progress, tone_block, loud
    # 0.9 of the mean noise power keeps the correction from overshooting.
    # It is read before track_level updates it with this block.
    cdef float noise_power = 0.9 * st.noise_power
    cdef float sums[3]
    cdef int predictable = block_level(x, &f, sums)
    track_level(st, &f, params)
    # The tone features only matter on blocks loud enough for a tone.
    loud = loud_for_tone(st, &f, params)
    if loud and predictable:
        block_tone(x, noise_power, &f, sums)
    tone_block = detect_tones(st, x, &f, loud, params, ring, &progress)
    if tone_block:
        st.tone_blocks += 1
    detect_speech(st, &f, tone_block, params, ring)
    check_limits(st, progress, params, ring)
    st.block += 1


cdef void finish_stream(Stream* st, int32_t* ring, const float* params) noexcept nogil:
    """Flush open segments and decide a call still undecided at its end."""
    st.block -= 1
    finish_tone(st, ring)
    if st.prog_kind != PROG_NONE:
        finish_progress(st, ring)
    if st.in_utterance:
        st.in_utterance = 0
        emit(st, ring, EV_SPEECH_END, st.utterance_start,
             (st.last_speech - st.utterance_start + 1) * 10, 0, 0)
    if st.verdict == V_NONE:
        if st.onset < 0:
            classify_no_speech(st, ring, C_NOISE, params)
        else:
            decide(st, ring, V_NOTSURE, C_STREAM_END)
    st.block += 1
