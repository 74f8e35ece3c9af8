# G.711 (ITU-T G.711) decoding for callers outside the analysis kernels.
include "_g711_tables.pxi"


cdef void _decode_table(
    const uint8_t[::1] codes, int16_t[::1] out, const int16_t* table
) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(codes.shape[0]):
        out[i] = table[codes[i]]


def decode_ulaw(const uint8_t[::1] codes, int16_t[::1] out):
    """Decode mu-law ``codes`` into ``out`` (same length, int16)."""
    with nogil:
        _decode_table(codes, out, ULAW_TABLE)


def decode_alaw(const uint8_t[::1] codes, int16_t[::1] out):
    """Decode A-law ``codes`` into ``out`` (same length, int16)."""
    with nogil:
        _decode_table(codes, out, ALAW_TABLE)
