# Events, the tone and speech trackers, and the verdict rules.


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
    if st.answered and st.tone_outcome != TONE_PROGRESS:
        st.answer_tones += 1
        st.answer_tone_ms += blocks * 10
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
            and st.onset >= 0 and st.beep_block < 0
            and (st.verdict != V_HUMAN or st.cause == C_SHORT_PAUSE)
            and st.verdict != V_SIT and st.verdict != V_FAX):
        st.tone_outcome = TONE_BEEP
        st.beep_block = st.tone_start
        emit(st, ring, EV_BEEP, st.tone_start, <int64_t>duration_ms,
             <int64_t>(st.tone_hz * 10.0 + 0.5), 0)
        if st.verdict == V_NONE or st.cause == C_SHORT_PAUSE:
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


cdef void classify_no_speech(Stream* st, int32_t* ring, int cause_if_sound,
                             const float* params) noexcept nogil:
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
    elif (params[P_LONE_SOUND_MS] > 0 and st.answer_tones == 1
            and st.answer_tone_ms <= params[P_LONE_SOUND_MS]):
        # One short sound after answer and quiet since: someone picked up
        # and waits to be spoken to. A voicemail without a greeting (a
        # bare beep) sounds the same, which is why this can be turned off.
        decide(st, ring, V_HUMAN, C_LONE_SOUND)
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
    cdef float required_pause_ms

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
                    st.greeting_speech_blocks = 0
                # The run's earlier blocks were too short to count yet.
                st.greeting_speech_blocks += st.speech_run - 1
            st.last_speech = k
            st.greeting_speech_blocks += 1
        elif st.in_utterance:
            st.last_speech = k
            st.greeting_speech_blocks += 1
    else:
        st.speech_run = 0
        st.silence_run += 1
        if st.silence_run == human_silence:
            if st.in_utterance:
                st.in_utterance = 0
                emit(st, ring, EV_SPEECH_END, st.utterance_start,
                     (st.last_speech - st.utterance_start + 1) * 10, 0, 0)

    # A provisional HUMAN (cause SHORT_PAUSE) is still open to revision,
    # so the rules below keep running until they confirm or revise it.
    if (st.verdict != V_NONE and st.cause != C_SHORT_PAUSE) or st.onset < 0:
        return

    # The greeting spans from the first word to the last one before the
    # current pause. A person says a word or two and waits. A machine
    # pauses too, between words and prompts, and the longer its greeting
    # has run the longer those pauses get. In the recorded-prompt corpus
    # (bench/amd_accuracy.py --timing-study), greetings up to 2 s paused at
    # most 470 ms and those of 2-2.5 s up to 700 ms (before the beep),
    # while persons who spoke longer than 1.2 s waited at least 1 s. So
    # the pause that makes a HUMAN is human_silence_ms up to
    # short_greeting_ms and rises linearly to long_pause_ms at
    # max_greeting_ms, where the call is a MACHINE.
    greeting_ms = (st.last_speech - st.onset + 1) * 10
    pause_ms = st.silence_run * 10
    if greeting_ms >= params[P_MAX_GREETING_MS]:
        decide(st, ring, V_MACHINE, C_LONG_GREETING if st.answered else C_EARLY_MEDIA)
        return
    required_pause_ms = params[P_HUMAN_SILENCE_MS]
    if greeting_ms > params[P_SHORT_GREETING_MS]:
        required_pause_ms += (
            (params[P_LONG_PAUSE_MS] - params[P_HUMAN_SILENCE_MS])
            * (greeting_ms - params[P_SHORT_GREETING_MS])
            / (params[P_MAX_GREETING_MS] - params[P_SHORT_GREETING_MS]))
    # A compact greeting, up to compact_greeting_ms long and nearly all
    # speech ("hello?", "yes, hello"), needs only compact_pause_ms. The
    # machines of the corpus that pause that long within their first
    # second read out digits one by one, and speech fills at most 69 %
    # of their greeting, against 76 % or more for 95 % of persons
    # (bench/amd_accuracy.py --timing-study).
    # NOTE: the margins are thin: machines of the corpus also pause
    # 240 ms after 0.3 s of speech and 250-460 ms after 1.01-1.05 s, so
    # a machine whose first phrase is compact and followed by a pause
    # of 250 ms is taken for a person.
    if (params[P_COMPACT_PAUSE_MS] > 0
            and greeting_ms <= params[P_COMPACT_GREETING_MS]
            and st.greeting_speech_blocks * 10
            >= params[P_COMPACT_SPEECH_SHARE] * greeting_ms
            and params[P_COMPACT_PAUSE_MS] < required_pause_ms):
        required_pause_ms = params[P_COMPACT_PAUSE_MS]
    if pause_ms >= required_pause_ms:
        if st.answered and st.onset >= st.answer_block:
            decide(st, ring, V_HUMAN, C_SHORT_GREETING)
        elif pause_ms >= params[P_LONG_PAUSE_MS]:
            # A short announcement before answer: judge the next one anew.
            st.onset = -1
    elif (st.verdict == V_NONE and params[P_PROVISIONAL_PAUSE_MS] > 0
            and pause_ms >= params[P_PROVISIONAL_PAUSE_MS]
            and greeting_ms <= params[P_SHORT_GREETING_MS]
            and st.answered and st.onset >= st.answer_block):
        # Opt-in early verdict. In the corpus a 250 ms pause after at most
        # 1.2 s of greeting came from 76 of 77 persons but also from 16 of
        # 120 machines, so the rules above go on to confirm it
        # (SHORT_GREETING) or revise it (LONG_GREETING, or BEEP).
        decide(st, ring, V_HUMAN, C_SHORT_PAUSE)
