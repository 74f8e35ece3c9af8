"""Call-progress analysis: silence, voice, answering machine, beep, SIT, fax, DTMF.

Usable on its own: it imports nothing from the rest of callsure.
"""

import numpy as np

from callsure.dsp._g711 import decode_alaw as _decode_alaw
from callsure.dsp._g711 import decode_ulaw as _decode_ulaw

__all__ = ["decode_g711"]


def decode_g711(codes, law: str) -> np.ndarray:
    """Decode G.711 bytes to int16 samples.

    Parameters
    ----------
    codes : bytes or ndarray of uint8, shape (n,)
    law : {"ulaw", "alaw"}

    Returns
    -------
    ndarray of int16, shape (n,)
    """
    data = np.ascontiguousarray(np.frombuffer(codes, dtype=np.uint8))
    out = np.empty(data.shape[0], dtype=np.int16)
    if law == "ulaw":
        _decode_ulaw(data, out)
    elif law == "alaw":
        _decode_alaw(data, out)
    else:
        raise ValueError(f"law must be 'ulaw' or 'alaw', got {law!r}")
    return out
