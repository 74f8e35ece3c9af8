# Per-block driver: tone trackers, speech structure and the verdict.


cdef void emit(Stream* st, int32_t* ring, int kind, int64_t start_block,
               int64_t duration_ms, int64_t value, int64_t extra) noexcept nogil:
    """Append an event to the stream's ring, dropping the oldest when full."""
    cdef int index
    cdef int32_t* slot
    if st.event_count == EVENT_CAPACITY:
        st.event_head = (st.event_head + 1) % EVENT_CAPACITY
        st.event_count -= 1
        st.events_dropped += 1
    index = (st.event_head + st.event_count) % EVENT_CAPACITY
    slot = ring + index * EVENT_FIELDS
    slot[0] = kind
    slot[1] = <int32_t>(start_block * 10)
    slot[2] = <int32_t>duration_ms
    slot[3] = <int32_t>value
    slot[4] = <int32_t>extra
    st.event_count += 1


cdef void decide(Stream* st, int32_t* ring, int verdict, int cause) noexcept nogil:
    st.verdict = verdict
    st.cause = cause
    st.verdict_block = st.block
    emit(st, ring, EV_VERDICT, st.block + 1, 0, verdict, cause)


cdef void finish_tone(Stream* st, int32_t* ring) noexcept nogil:
    """Close the single-tone segment: report it and run SIT and CNG checks."""
    cdef int64_t blocks = st.tone_last - st.tone_start + 1
    cdef int code, i
    if st.tone_start < 0:
        return
    if blocks < 6:
        # Vowels hold a steady pitch for 40-50 ms; tones worth reporting
        # (beeps from 70 ms, SIT segments, fax) last longer.
        st.tone_start = -1
        return
    emit(st, ring, EV_TONE, st.tone_start, blocks * 10,
         <int64_t>(st.tone_hz * 10.0 + 0.5), 0)
    for i in range(2):
        st.sit_hz[i] = st.sit_hz[i + 1]
        st.sit_start[i] = st.sit_start[i + 1]
        st.sit_end[i] = st.sit_end[i + 1]
    st.sit_hz[2] = st.tone_hz
    st.sit_start[2] = st.tone_start
    st.sit_end[2] = st.tone_last
    code = sit_code(st)
    if code:
        emit(st, ring, EV_SIT, st.sit_start[0], (st.sit_end[2] - st.sit_start[0] + 1) * 10,
             code, 0)
        st.sit_code = code
        if st.verdict == V_NONE:
            decide(st, ring, V_SIT, C_SIT_TONE)

    # CNG: 1100 Hz +-38 Hz, 0.5 s on, 3 s off (ITU-T T.30).
    if fabsf(st.tone_hz - 1100.0) <= 38.0 and 35 <= blocks <= 70:
        emit(st, ring, EV_FAX_CNG, st.tone_start, blocks * 10, 11000, 0)
        if st.verdict == V_NONE and (
            st.onset < 0
            or (st.cng_last_start >= 0
                and 250 <= st.tone_start - st.cng_last_start <= 450)
        ):
            decide(st, ring, V_FAX, C_FAX_CNG)
        st.cng_last_start = st.tone_start
    st.tone_start = -1


cdef int track_tone(Stream* st, int32_t* ring, int single, float hz,
                    float level_db, const float* params) noexcept nogil:
    """Extend, start or end the single-tone segment with this block.

    Return 1 when the block belongs to a steady tone of at least 30 ms:
    vowels also look like one tone for a block or two, but their pitch
    moves.
    """
    cdef int64_t k = st.block
    cdef float duration_ms, tolerance
    if not single:
        if st.tone_start >= 0 and k - st.tone_last > 3:
            finish_tone(st, ring)
        return 0

    # Noise makes a block's frequency estimate wander by a few percent;
    # a siren sweeps further than this within a beep's length.
    tolerance = 0.03 * st.tone_hz
    if st.tone_start >= 0 and k - st.tone_last <= 3 and fabsf(hz - st.tone_hz) <= tolerance:
        st.tone_last = k
        st.tone_count += 1
        if st.tone_count <= 8:
            st.tone_hz += (hz - st.tone_hz) / st.tone_count
        if st.tone_count == 2:
            # The first block may hold the tone only in part.
            st.tone_db_min = level_db
            st.tone_db_max = level_db
        if level_db < st.tone_db_min:
            st.tone_db_min = level_db
        if level_db > st.tone_db_max:
            st.tone_db_max = level_db
    else:
        finish_tone(st, ring)
        st.tone_start = k
        st.tone_last = k
        st.tone_hz = hz
        st.tone_count = 1
        st.tone_db_min = level_db
        st.tone_db_max = level_db
        # The quiet before the tone, allowing for onset blocks that hold
        # the tone only in part.
        st.tone_quiet_before = st.quiet_run
        if st.quiet_run == 0 and k - st.last_quiet_end <= 3:
            st.tone_quiet_before = st.last_quiet_run
        st.tone_outcome = TONE_UNDECIDED

    if st.tone_count < 3:
        return 0
    if st.tone_outcome != TONE_UNDECIDED:
        return 1
    duration_ms = (st.tone_last - st.tone_start + 1) * 10.0

    # Fax CED/ANS: 2100 Hz +-15 Hz (ITU-T V.25), plus 10 Hz for the
    # estimate; it lasts 2.6-4 s, but fax_ced_ms of it is enough.
    if fabsf(st.tone_hz - 2100.0) <= 25.0:
        if duration_ms >= params[P_FAX_CED_MS]:
            st.tone_outcome = TONE_FAX_CED
            emit(st, ring, EV_FAX_CED, st.tone_start, <int64_t>duration_ms, 21000, 0)
            if st.verdict == V_NONE:
                decide(st, ring, V_FAX, C_FAX_CED)
        return 1

    # A voicemail beep: one steady tone after a pause in or after a
    # greeting. Ringback and other dual tones never get here, and a beat
    # between two close tones shows up as level swings.
    if (duration_ms >= params[P_BEEP_MIN_MS]
            and st.tone_db_max - st.tone_db_min <= 6.0
            and params[P_BEEP_MIN_HZ] <= st.tone_hz <= params[P_BEEP_MAX_HZ]
            and st.tone_quiet_before * 10.0 >= params[P_BEEP_QUIET_MS]
            and st.onset >= 0 and st.beep_block < 0 and st.verdict != V_HUMAN
            and st.verdict != V_SIT and st.verdict != V_FAX):
        st.tone_outcome = TONE_BEEP
        st.beep_block = st.tone_start
        emit(st, ring, EV_BEEP, st.tone_start, <int64_t>duration_ms,
             <int64_t>(st.tone_hz * 10.0 + 0.5), 0)
        if st.verdict == V_NONE:
            decide(st, ring, V_MACHINE, C_BEEP)
    return 1


cdef void finish_progress(Stream* st, int32_t* ring) noexcept nogil:
    cdef int64_t duration_ms = (st.prog_last - st.prog_start + 1) * 10
    if st.prog_kind == PROG_RINGBACK and duration_ms >= 600:
        emit(st, ring, EV_RINGBACK, st.prog_start, duration_ms, 4400, 4800)
    elif st.prog_kind == PROG_BUSY:
        # Busy 0.5 s on, reorder 0.25 s on (precise tone plan, 480+620 Hz).
        if 380 <= duration_ms <= 700:
            emit(st, ring, EV_BUSY, st.prog_start, duration_ms, 4800, 6200)
            st.busy_count += 1
        elif 180 <= duration_ms < 380:
            emit(st, ring, EV_REORDER, st.prog_start, duration_ms, 4800, 6200)
            st.busy_count += 1
    st.prog_kind = PROG_NONE


cdef void track_progress(Stream* st, int32_t* ring, int kind) noexcept nogil:
    cdef int64_t k = st.block
    if kind != PROG_NONE:
        if kind == st.prog_kind and k - st.prog_last <= 3:
            st.prog_last = k
        else:
            if st.prog_kind != PROG_NONE:
                finish_progress(st, ring)
            st.prog_kind = kind
            st.prog_start = k - 2
            st.prog_last = k
        # Three detections in a row (50 ms of the tone pair) before the
        # single-tone segment is taken for part of it: the onset of a beep
        # spreads over both bins for a block or two.
        if st.tone_start >= 0 and st.prog_last - st.prog_start >= 4:
            st.tone_outcome = TONE_PROGRESS
    elif st.prog_kind != PROG_NONE and k - st.prog_last > 3:
        finish_progress(st, ring)


cdef void track_dtmf(Stream* st, int32_t* ring, int key) noexcept nogil:
    """Debounce DTMF: two validated blocks make a digit, two misses end it."""
    if key >= 0 and (not st.dtmf_active or key == st.dtmf_key):
        if key == st.dtmf_key:
            st.dtmf_run += 1
        else:
            st.dtmf_key = key
            st.dtmf_run = 1
            st.dtmf_start = st.block - 1
        st.dtmf_miss = 0
        if not st.dtmf_active and st.dtmf_run >= 2:
            st.dtmf_active = 1
            emit(st, ring, EV_DTMF, st.dtmf_start, (st.block - st.dtmf_start + 1) * 10,
                 key, 0)
        return
    st.dtmf_miss += 1
    if st.dtmf_miss >= 2:
        st.dtmf_active = 0
        st.dtmf_key = -1
        st.dtmf_run = 0


cdef void classify_no_speech(Stream* st, int32_t* ring, int cause_if_sound) noexcept nogil:
    """Decide a call in which no speech was heard."""
    cdef int64_t heard = st.block - st.answer_block + 1 - st.playing_blocks
    if heard < 1:
        heard = 1
    if st.busy_count > 0:
        decide(st, ring, V_NOTSURE, C_BUSY)
    elif st.tone_blocks * 3 > heard:
        decide(st, ring, V_NOTSURE, C_RINGBACK)
    elif st.active_blocks * 3 > heard or st.loud_blocks * 2 > heard:
        decide(st, ring, V_NOTSURE, cause_if_sound)
    elif st.sound_blocks == 0:
        decide(st, ring, V_SILENCE, C_NO_AUDIO)
    else:
        decide(st, ring, V_SILENCE, C_DEAD_AIR)


cdef void track_speech(Stream* st, int32_t* ring, int speech,
                       const float* params) noexcept nogil:
    """Follow words and pauses and decide HUMAN or MACHINE from them."""
    cdef int64_t k = st.block
    cdef int human_silence = <int>(params[P_HUMAN_SILENCE_MS] / 10.0)
    cdef int64_t greeting_ms, pause_ms

    if speech:
        st.speech_run += 1
        st.silence_run = 0
        if st.speech_run * 10 >= params[P_MIN_WORD_MS]:
            if not st.in_utterance:
                st.in_utterance = 1
                st.utterance_start = k - st.speech_run + 1
                emit(st, ring, EV_SPEECH_START, st.utterance_start, 0, 0, 0)
                if st.onset < 0:
                    st.onset = st.utterance_start
            st.last_speech = k
        elif st.in_utterance:
            st.last_speech = k
    else:
        st.speech_run = 0
        st.silence_run += 1
        if st.silence_run == human_silence:
            if st.in_utterance:
                st.in_utterance = 0
                emit(st, ring, EV_SPEECH_END, st.utterance_start,
                     (st.last_speech - st.utterance_start + 1) * 10, 0, 0)

    if st.verdict != V_NONE or st.onset < 0:
        return

    # The greeting spans from the first word to the last one before the
    # current pause. A person says a word or two and waits, so a short
    # greeting and a pause make a HUMAN; a machine pauses too, but seldom
    # longer than half a second in a greeting (measured on recorded
    # prompts), and a greeting of a few words then a long pause is also a
    # person. Longer greetings are machines.
    greeting_ms = (st.last_speech - st.onset + 1) * 10
    pause_ms = st.silence_run * 10
    if greeting_ms >= params[P_MAX_GREETING_MS]:
        decide(st, ring, V_MACHINE, C_LONG_GREETING if st.answered else C_EARLY_MEDIA)
    elif (pause_ms >= params[P_HUMAN_SILENCE_MS]
            and greeting_ms <= params[P_SHORT_GREETING_MS]) or (
            pause_ms >= params[P_LONG_PAUSE_MS]):
        if st.answered and st.onset >= st.answer_block:
            decide(st, ring, V_HUMAN, C_SHORT_GREETING)
        elif pause_ms >= params[P_LONG_PAUSE_MS]:
            # A short announcement before answer: judge the next one anew.
            st.onset = -1


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


cdef void analyse_block(Stream* st, float* x, const float* params,
                        int32_t* ring) noexcept nogil:
    """Run every detector on one 10 ms block of 80 samples at 8 kHz."""
    cdef BlockFeatures f
    cdef int single, dual, key = -1, progress = PROG_NONE, tone_block
    cdef int active, speech, steady, structured, full_bank
    cdef float hz
    cdef int64_t age, heard
    cdef float smoothed_energy
    # 0.9 of the mean noise power keeps the correction from overshooting.
    block_features(x, 0.9 * st.noise_power, &f)

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

    # Tones: the bank runs only on blocks that one or two tones explain.
    single = 0
    dual = 0
    # A tone that opens the stream is its own floor, so a tone also counts
    # when it is clearly above the minimum level.
    if f.level_db > params[P_MIN_LEVEL_DB] and (
            f.level_db > st.floor_db + params[P_TONE_MARGIN_DB]
            or f.level_db > params[P_MIN_LEVEL_DB] + params[P_TONE_MARGIN_DB]):
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
    hz = f.tone_hz
    # The bank also runs on blocks clearly above the floor whose lag-1
    # correlation is below 0.85, so DTMF is heard at low SNR where the
    # predictors cannot tell two tones from noise. DTMF pairs stay below
    # 0.82 even with the low group 8 dB up; voiced speech, most of a
    # call's sound, is above.
    # There only the DTMF half of the bank is needed.
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
        progress = progress_kind(st)
        if single:
            hz = refine_tone_hz(st, hz)
    track_dtmf(st, ring, key)
    track_progress(st, ring, progress)
    steady = track_tone(st, ring, single and key < 0 and progress == PROG_NONE, hz,
                        f.level_db, params)
    tone_block = steady or key >= 0 or progress != PROG_NONE
    if tone_block:
        st.tone_blocks += 1

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
            classify_no_speech(st, ring, C_NOISE)
        elif heard >= params[P_MAX_ANALYSIS_MS]:
            decide(st, ring, V_NOTSURE, C_TIMEOUT)
    st.block += 1


cdef void finish_stream(Stream* st, int32_t* ring) noexcept nogil:
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
            classify_no_speech(st, ring, C_NOISE)
        else:
            decide(st, ring, V_NOTSURE, C_STREAM_END)
    st.block += 1
