"""callsure's runtime: Ray actors, the gRPC server, the SIP gateway and the CLI."""
