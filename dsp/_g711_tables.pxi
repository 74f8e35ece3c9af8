# G.711 (ITU-T G.711) mu-law and A-law expansion by 256-entry tables, shared
# by the decoder module and the analysis kernels through `include`.
from libc.stdint cimport int16_t, uint8_t

cdef int16_t ULAW_TABLE[256]
cdef int16_t ALAW_TABLE[256]


cdef int16_t _ulaw_to_linear(uint8_t code) noexcept nogil:
    cdef int value
    code = ~code
    value = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return <int16_t>((0x84 - value) if (code & 0x80) else (value - 0x84))


cdef int16_t _alaw_to_linear(uint8_t code) noexcept nogil:
    cdef int value, segment
    code ^= 0x55
    value = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        value += 8
    elif segment == 1:
        value += 0x108
    else:
        value = (value + 0x108) << (segment - 1)
    return <int16_t>(value if (code & 0x80) else -value)


cdef void _fill_g711_tables() noexcept nogil:
    cdef int i
    for i in range(256):
        ULAW_TABLE[i] = _ulaw_to_linear(<uint8_t>i)
        ALAW_TABLE[i] = _alaw_to_linear(<uint8_t>i)


_fill_g711_tables()
