"""callsure's runtime: Ray actors, the gRPC server, the SIP gateway and the CLI."""

import os

# Ray reads this when it is imported: with "0", a local Ray binds and
# advertises the address given as ``_node_ip_address`` (127.0.0.1 by
# default) instead of the machine's external address. Every module of
# this package may import ray, so the variable is set here, first.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
