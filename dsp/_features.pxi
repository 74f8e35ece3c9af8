# Block features: level, tone purity by linear prediction, and the
# DFT tone bank. All functions work on one 10 ms block of 80 float
# samples at 8 kHz.
from libc.math cimport acosf, atan2f, cosf, log10f, sinf, sqrtf, M_PI

# The bank's DFT kernel, row n: cos(w_k n) for the 16 tones, then
# -sin(w_k n).
cdef float BANK_TABLE[BLOCK * 2 * N_BANK]
# Phase a tone at the bank frequency advances over one block, wrapped to
# (-pi, pi]: the reference for phase-derived frequency offsets.
cdef float BANK_ADVANCE[N_BANK]
# The same advance as a rotation, cos and -sin, for bank_power_long.
cdef float BANK_ROTATION_COS[N_BANK]
cdef float BANK_ROTATION_SIN[N_BANK]


cdef void _fill_bank_tables() noexcept nogil:
    cdef int k, n
    cdef float omega
    for k in range(N_BANK):
        omega = 2.0 * M_PI * BANK_HZ[k] / 8000.0
        BANK_ADVANCE[k] = _wrap_phase(omega * BLOCK)
        BANK_ROTATION_COS[k] = cosf(omega * BLOCK)
        BANK_ROTATION_SIN[k] = -sinf(omega * BLOCK)
        for n in range(BLOCK):
            BANK_TABLE[n * 2 * N_BANK + k] = cosf(omega * n)
            BANK_TABLE[n * 2 * N_BANK + N_BANK + k] = -sinf(omega * n)


cdef inline float _wrap_phase(float phase) noexcept nogil:
    while phase > M_PI:
        phase -= 2.0 * M_PI
    while phase <= -M_PI:
        phase += 2.0 * M_PI
    return phase


_fill_bank_tables()

# The sums below dominate the cost of a block. GCC does not vectorise a
# float sum without -ffast-math (it may not reassociate it), so they are
# written with GCC/Clang vector extensions: four partial sums per
# quantity, one SSE register each. Other compilers get the scalar loop.
cdef extern from *:
    """
    #include <string.h>
    #if defined(__GNUC__)
    typedef float callsure_v4sf __attribute__((vector_size(16)));
    static inline callsure_v4sf callsure_load4(const float *p) {
        callsure_v4sf v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    static inline float callsure_sum4(callsure_v4sf v) {
        return (v[0] + v[1]) + (v[2] + v[3]);
    }
    #endif

    /* Subtract the mean of the 80 samples in place; return the energy. */
    static float callsure_center_block(float *x) {
    #if defined(__GNUC__)
        /* Four accumulators each, so the additions do not wait on one
           another (80 = 5 x 16 samples). */
        callsure_v4sf t0 = {0}, t1 = {0}, t2 = {0}, t3 = {0}, mean;
        float m;
        int n, k;
        for (n = 0; n < 80; n += 16) {
            t0 += callsure_load4(x + n);
            t1 += callsure_load4(x + n + 4);
            t2 += callsure_load4(x + n + 8);
            t3 += callsure_load4(x + n + 12);
        }
        m = callsure_sum4((t0 + t1) + (t2 + t3)) / 80.0f;
        mean = (callsure_v4sf){m, m, m, m};
        t0 = t1 = t2 = t3 = (callsure_v4sf){0, 0, 0, 0};
        for (n = 0; n < 80; n += 16) {
            callsure_v4sf v[4];
            for (k = 0; k < 4; k++) {
                v[k] = callsure_load4(x + n + 4 * k) - mean;
                memcpy(x + n + 4 * k, &v[k], sizeof v[k]);
            }
            t0 += v[0] * v[0];
            t1 += v[1] * v[1];
            t2 += v[2] * v[2];
            t3 += v[3] * v[3];
        }
        return callsure_sum4((t0 + t1) + (t2 + t3));
    #else
        float m = 0.0f, energy = 0.0f;
        int n;
        for (n = 0; n < 80; n++) m += x[n];
        m /= 80.0f;
        for (n = 0; n < 80; n++) { x[n] -= m; energy += x[n] * x[n]; }
        return energy;
    #endif
    }

    /* The 16-tone bank as a direct DFT: a table row per sample, eight
       independent sums. Unlike a Goertzel recursion, whose every step
       waits for the previous one, this runs at the multiplier's rate. */
    static void callsure_dft_bank(const float *x, const float *table,
                                  float *re, float *im, int tones) {
        int n, j;
    #if defined(__GNUC__)
        callsure_v4sf acc[8] = {{0}};
        if (tones == 8) {
            /* The DTMF half: columns 0-7 (cosines) and 16-23 (sines). */
            for (n = 0; n < 80; n++) {
                callsure_v4sf xn = {x[n], x[n], x[n], x[n]};
                acc[0] += xn * callsure_load4(table + 32 * n);
                acc[1] += xn * callsure_load4(table + 32 * n + 4);
                acc[4] += xn * callsure_load4(table + 32 * n + 16);
                acc[5] += xn * callsure_load4(table + 32 * n + 20);
            }
        } else {
            for (n = 0; n < 80; n++) {
                callsure_v4sf xn = {x[n], x[n], x[n], x[n]};
                for (j = 0; j < 8; j++)
                    acc[j] += xn * callsure_load4(table + 32 * n + 4 * j);
            }
        }
        for (j = 0; j < tones / 4; j++) {
            memcpy(re + 4 * j, &acc[j], sizeof acc[j]);
            memcpy(im + 4 * j, &acc[4 + j], sizeof acc[j]);
        }
    #else
        for (j = 0; j < tones; j++) { re[j] = 0.0f; im[j] = 0.0f; }
        for (n = 0; n < 80; n++)
            for (j = 0; j < tones; j++) {
                re[j] += x[n] * table[32 * n + j];
                im[j] += x[n] * table[32 * n + 16 + j];
            }
    #endif
    }

    /* Order-2 prediction sums over n = 4..79, see block_level: ss sv vv. */
    static void callsure_order2_sums(const float *x, float *out) {
        int n;
    #if defined(__GNUC__)
        callsure_v4sf acc[3] = {{0}};
        for (n = 4; n < 80; n += 4) {
            callsure_v4sf x0 = callsure_load4(x + n), x1 = callsure_load4(x + n - 1);
            callsure_v4sf x2 = callsure_load4(x + n - 2);
            callsure_v4sf s = x0 + x2;
            acc[0] += s * s; acc[1] += s * x1; acc[2] += x1 * x1;
        }
        for (n = 0; n < 3; n++) out[n] = callsure_sum4(acc[n]);
    #else
        for (n = 0; n < 3; n++) out[n] = 0.0f;
        for (n = 4; n < 80; n++) {
            float s = x[n] + x[n - 2];
            out[0] += s * s; out[1] += s * x[n - 1]; out[2] += x[n - 1] * x[n - 1];
        }
    #endif
    }

    /* Order-4 prediction sums over n = 4..79, see block_tone:
       uu uv uw vv4 vw ww. */
    static void callsure_order4_sums(const float *x, float *out) {
        int n;
    #if defined(__GNUC__)
        callsure_v4sf acc[6] = {{0}};
        for (n = 4; n < 80; n += 4) {
            callsure_v4sf x0 = callsure_load4(x + n), x1 = callsure_load4(x + n - 1);
            callsure_v4sf x2 = callsure_load4(x + n - 2), x3 = callsure_load4(x + n - 3);
            callsure_v4sf x4 = callsure_load4(x + n - 4);
            callsure_v4sf u = x0 + x4, v = x1 + x3;
            acc[0] += u * u; acc[1] += u * v; acc[2] += u * x2;
            acc[3] += v * v; acc[4] += v * x2; acc[5] += x2 * x2;
        }
        for (n = 0; n < 6; n++) out[n] = callsure_sum4(acc[n]);
    #else
        for (n = 0; n < 6; n++) out[n] = 0.0f;
        for (n = 4; n < 80; n++) {
            float u = x[n] + x[n - 4], v = x[n - 1] + x[n - 3];
            out[0] += u * u; out[1] += u * v; out[2] += u * x[n - 2];
            out[3] += v * v; out[4] += v * x[n - 2]; out[5] += x[n - 2] * x[n - 2];
        }
    #endif
    }
    """
    float center_block "callsure_center_block"(float* x) noexcept nogil
    void dft_bank "callsure_dft_bank"(
        const float* x, const float* table, float* re, float* im, int tones) noexcept nogil
    void order2_sums "callsure_order2_sums"(const float* x, float* out) noexcept nogil
    void order4_sums "callsure_order4_sums"(const float* x, float* out) noexcept nogil



cdef void block_features(float* x, float noise_power, BlockFeatures* out) noexcept nogil:
    """Remove the block mean from x in place and fill out.

    noise_power is the line's white noise power per sample (int16 units
    squared), or 0. Its share is taken out of the order-2 sums, which
    otherwise bias a tone's frequency down and its purity up at low SNR.
    """
    cdef float sums[3]
    if block_level(x, out, sums):
        block_tone(x, noise_power, out, sums)


cdef int block_level(float* x, BlockFeatures* out, float* sums) noexcept nogil:
    """Centre x in place and fill energy, level_db, raw_purity and voicing.

    Return 1 when block_tone still has to fill the tone features, with
    the order-2 sums ss, sv, vv left in sums. Return 0 when the block is
    too quiet to predict, and out is complete.
    """
    cdef int n
    cdef float energy, s, ss, sv, vv

    energy = center_block(x)
    out.energy = energy / BLOCK
    out.level_db = <float>10.0 * log10f(out.energy + <float>1.0)
    out.tone_hz = 0.0
    if energy <= 1e-3:
        # Digital silence: nothing to predict.
        out.purity = 4.0
        out.raw_purity = 4.0
        out.dual_purity = 4.0
        out.voicing = 0.0
        return 0

    # Order 2: a pure tone obeys x[n] + x[n-2] = 2 cos(w) x[n-1], summed
    # over n = 2..79.
    order2_sums(x, sums)
    ss = sums[0]
    sv = sums[1]
    vv = sums[2]
    for n in range(2, 4):
        s = x[n] + x[n - 2]
        ss += s * s
        sv += s * x[n - 1]
        vv += x[n - 1] * x[n - 1]

    if vv <= 1e-3:
        out.purity = 4.0
        out.raw_purity = 4.0
        out.dual_purity = 4.0
        out.voicing = 0.0
        return 0

    out.voicing = 0.5 * sv / vv
    out.raw_purity = (ss - sv * sv / vv) / vv
    sums[0] = ss
    sums[1] = sv
    sums[2] = vv
    return 1


cdef void block_tone(const float* x, float noise_power, BlockFeatures* out,
                     const float* sums) noexcept nogil:
    """Fill purity, tone_hz and dual_purity after block_level returned 1.

    Only the tone detectors read them, and only on blocks loud enough for
    a tone, so quieter blocks skip this half of the work.
    """
    cdef float ss = sums[0], sv = sums[1], vv = sums[2]
    cdef float uu, uv, uw, vv4, vw, ww
    cdef float a, b1, b2, det, residual
    cdef float order4[6]

    # Symmetric order 4: two tones obey x[n] + x[n-4] = b1 (x[n-1] +
    # x[n-3]) + b2 x[n-2], summed over n = 4..79.
    order4_sums(x, order4)
    uu = order4[0]
    uv = order4[1]
    uw = order4[2]
    vv4 = order4[3]
    vw = order4[4]
    ww = order4[5]

    # White noise adds its power to each x[n-1]^2 and twice to each
    # (x[n] + x[n-2])^2, and nothing on average to the cross terms.
    if vv - (BLOCK - 2) * noise_power > 0.2 * vv:
        vv -= (BLOCK - 2) * noise_power
        ss -= 2.0 * (BLOCK - 2) * noise_power
    a = sv / vv
    residual = ss - a * sv
    if residual < 0.0:
        residual = 0.0
    out.purity = residual / vv
    out.tone_hz = 0.0
    if out.purity <= 0.5:
        # Only blocks near a tone need its frequency, and acosf is costly.
        a = 0.5 * a
        if a > 1.0:
            a = 1.0
        elif a < -1.0:
            a = -1.0
        out.tone_hz = acosf(a) * <float>(8000.0 / (2.0 * M_PI))
        if out.tone_hz < 1000.0:
            # Below 1 kHz the lag-1 predictor is ill-conditioned (2 cos w
            # near 2), so noise scatters its frequency; x[n] + x[n-4] =
            # 2 cos(2w) x[n-2] uses sums already taken and is twice as
            # steady there.
            lagged_tone(uu, uw, ww, noise_power, out)

    # The same correction for the order-4 sums: each of u and v carries
    # two noise samples, w one.
    if ww - (BLOCK - 4) * noise_power > 0.2 * ww:
        uu -= 2.0 * (BLOCK - 4) * noise_power
        vv4 -= 2.0 * (BLOCK - 4) * noise_power
        ww -= (BLOCK - 4) * noise_power
    det = vv4 * ww - vw * vw
    if det <= 1e-6 * vv4 * ww:
        out.dual_purity = out.purity
        return
    b1 = (uv * ww - uw * vw) / det
    b2 = (uw * vv4 - uv * vw) / det
    residual = uu - b1 * uv - b2 * uw
    if residual < 0.0:
        residual = 0.0
    out.dual_purity = residual / ww


cdef void lagged_tone(float uu, float uw, float ww, float noise_power,
                      BlockFeatures* out) noexcept nogil:
    """Replace purity and tone_hz by the lag-2 predictor's (n = 4..79)."""
    cdef float a, residual
    if ww - (BLOCK - 4) * noise_power > 0.2 * ww:
        ww -= (BLOCK - 4) * noise_power
        uu -= 2.0 * (BLOCK - 4) * noise_power
    if ww <= 1e-3:
        return
    a = uw / ww
    residual = uu - a * uw
    if residual < 0.0:
        residual = 0.0
    out.purity = residual / ww
    a = 0.5 * a
    if a > 1.0:
        a = 1.0
    elif a < -1.0:
        a = -1.0
    out.tone_hz = acosf(a) * <float>(8000.0 / (4.0 * M_PI))


cdef void tone_bank(const float* x, float* re, float* im) noexcept nogil:
    """Fill re/im with each bank tone's DFT value over the block."""
    dft_bank(x, BANK_TABLE, re, im, 16)


cdef void dtmf_bank(const float* x, float* re, float* im) noexcept nogil:
    """Fill re/im for the eight DTMF tones only (the first eight)."""
    dft_bank(x, BANK_TABLE, re, im, 8)


cdef float goertzel_power(const float* x, float hz) noexcept nogil:
    """Mean power of the component of x at hz (int16 units squared)."""
    cdef float omega = 2.0 * M_PI * hz / 8000.0
    cdef float coeff = 2.0 * cosf(omega)
    cdef float s0, s1 = 0.0, s2 = 0.0
    cdef int n
    for n in range(BLOCK):
        s0 = x[n] + coeff * s1 - s2
        s2 = s1
        s1 = s0
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) * (2.0 / (BLOCK * BLOCK))


cdef inline float bank_power(const Stream* st, int age, int k) noexcept nogil:
    """Mean power of bank tone k, age blocks ago (int16 units squared)."""
    return (st.bank_re[age][k] * st.bank_re[age][k]
            + st.bank_im[age][k] * st.bank_im[age][k]) * (2.0 / (BLOCK * BLOCK))


cdef float bank_frequency(const Stream* st, int k) noexcept nogil:
    """Frequency of bank tone k from its phase advance over the last block.

    Valid when the bank ran on the two newest blocks and the tone is within
    50 Hz of the bank frequency (half the inverse block length).
    """
    cdef float re = st.bank_re[0][k] * st.bank_re[1][k] + st.bank_im[0][k] * st.bank_im[1][k]
    cdef float im = st.bank_im[0][k] * st.bank_re[1][k] - st.bank_re[0][k] * st.bank_im[1][k]
    cdef float phase = _wrap_phase(atan2f(im, re) - BANK_ADVANCE[k])
    return BANK_HZ[k] + phase * (8000.0 / (2.0 * M_PI * BLOCK))


cdef float bank_power_long(const Stream* st, int k) noexcept nogil:
    """Mean power of tone k over the last three blocks joined (30 ms).

    Resolves 440 Hz from 480 Hz, which one 10 ms block cannot.
    """
    cdef float c = BANK_ROTATION_COS[k], s = BANK_ROTATION_SIN[k]
    cdef float re, im, t
    # X = X[k-2] + r X[k-1] + r^2 X[k], evaluated by Horner's rule
    # backwards: ((X[k] r + X[k-1]) r + X[k-2]).
    re = st.bank_re[0][k]
    im = st.bank_im[0][k]
    t = re * c - im * s
    im = re * s + im * c
    re = t + st.bank_re[1][k]
    im = im + st.bank_im[1][k]
    t = re * c - im * s
    im = re * s + im * c
    re = t + st.bank_re[2][k]
    im = im + st.bank_im[2][k]
    return (re * re + im * im) * (2.0 / (9.0 * BLOCK * BLOCK))
