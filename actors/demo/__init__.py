"""The surge demo: the real call log replayed through callsure over SIP."""
