# Block features: level, tone purity by linear prediction, and the
# Goertzel tone bank. All functions work on one 10 ms block of 80 float
# samples at 8 kHz.
from libc.math cimport acosf, atan2f, cosf, log10f, sinf, sqrtf, M_PI

cdef float BANK_COEFF[N_BANK]
cdef float BANK_COS[N_BANK]
cdef float BANK_SIN[N_BANK]
# Phase a tone at the bank frequency advances over one block, wrapped to
# (-pi, pi]: the reference for phase-derived frequency offsets.
cdef float BANK_ADVANCE[N_BANK]


cdef void _fill_bank_tables() noexcept nogil:
    cdef int k
    cdef float omega
    for k in range(N_BANK):
        omega = 2.0 * M_PI * BANK_HZ[k] / 8000.0
        BANK_COEFF[k] = 2.0 * cosf(omega)
        BANK_COS[k] = cosf(omega)
        BANK_SIN[k] = sinf(omega)
        BANK_ADVANCE[k] = _wrap_phase(omega * BLOCK)


cdef inline float _wrap_phase(float phase) noexcept nogil:
    while phase > M_PI:
        phase -= 2.0 * M_PI
    while phase <= -M_PI:
        phase += 2.0 * M_PI
    return phase


_fill_bank_tables()


cdef void block_features(float* x, float noise_power, BlockFeatures* out) noexcept nogil:
    """Remove the block mean from x in place and fill out.

    noise_power is the line's white noise power per sample (int16 units
    squared), or 0. Its share is taken out of the order-2 sums, which
    otherwise bias a tone's frequency down and its purity up at low SNR.
    """
    cdef int n
    cdef float mean = 0.0, energy = 0.0
    cdef float ss = 0.0, sv = 0.0, vv = 0.0
    cdef float uu = 0.0, uv = 0.0, uw = 0.0, vv4 = 0.0, vw = 0.0, ww = 0.0
    cdef float s, v, u, w, a, b1, b2, det, residual

    for n in range(BLOCK):
        mean += x[n]
    mean /= BLOCK
    for n in range(BLOCK):
        x[n] -= mean
        energy += x[n] * x[n]

    # Order 2: a pure tone obeys x[n] + x[n-2] = 2 cos(w) x[n-1].
    for n in range(2, BLOCK):
        s = x[n] + x[n - 2]
        v = x[n - 1]
        ss += s * s
        sv += s * v
        vv += v * v

    # Symmetric order 4: two tones obey x[n] + x[n-4] =
    # b1 (x[n-1] + x[n-3]) + b2 x[n-2].
    for n in range(4, BLOCK):
        u = x[n] + x[n - 4]
        v = x[n - 1] + x[n - 3]
        w = x[n - 2]
        uu += u * u
        uv += u * v
        uw += u * w
        vv4 += v * v
        vw += v * w
        ww += w * w

    out.energy = energy / BLOCK
    out.level_db = 10.0 * log10f(out.energy + 1.0)
    if vv <= 1e-3:
        out.purity = 4.0
        out.raw_purity = 4.0
        out.dual_purity = 4.0
        out.tone_hz = 0.0
        out.voicing = 0.0
        return

    out.voicing = 0.5 * sv / vv
    out.raw_purity = (ss - sv * sv / vv) / vv
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
    a = 0.5 * a
    if a > 1.0:
        a = 1.0
    elif a < -1.0:
        a = -1.0
    out.tone_hz = acosf(a) * (8000.0 / (2.0 * M_PI))

    det = vv4 * ww - vw * vw
    if det <= 1e-6 * vv4 * ww:
        out.dual_purity = out.purity
        return
    b1 = (uv * ww - uw * vw) / det
    b2 = (uw * vv4 - uv * vw) / det
    residual = uu - b1 * uv - b2 * uw
    out.dual_purity = residual / ww


cdef void goertzel_bank(
    const float* x, float* re, float* im
) noexcept nogil:
    """Run the bank over one block; re/im get each tone's DFT value.

    The tones are interleaved in the inner loop so the compiler vectorises
    across them; a tone-by-tone loop is bound by the recursion's latency.
    """
    cdef float s1[N_BANK]
    cdef float s2[N_BANK]
    cdef float s0, xn
    cdef int n, k
    for k in range(N_BANK):
        s1[k] = 0.0
        s2[k] = 0.0
    for n in range(BLOCK):
        xn = x[n]
        for k in range(N_BANK):
            s0 = xn + BANK_COEFF[k] * s1[k] - s2[k]
            s2[k] = s1[k]
            s1[k] = s0
    for k in range(N_BANK):
        # y = s1 - exp(-jw) s2: the DFT value times exp(jw (N - 1)), a
        # constant per tone that cancels in phase differences.
        re[k] = s1[k] - BANK_COS[k] * s2[k]
        im[k] = BANK_SIN[k] * s2[k]


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
    cdef float omega = 2.0 * M_PI * BANK_HZ[k] / 8000.0
    cdef float c = cosf(omega * BLOCK), s = -sinf(omega * BLOCK)
    cdef float re = st.bank_re[2][k], im = st.bank_im[2][k]
    cdef float t
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
