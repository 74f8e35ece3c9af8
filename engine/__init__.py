"""callsure's domain: customers, callback promises, policies, prediction and storage.

Plain Python with an injected clock: no Ray, no sockets, no pjsua2.
"""

import logging

logging.getLogger("callsure").addHandler(logging.NullHandler())
