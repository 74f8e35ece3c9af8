"""Every configuration key, with its default, check and help text.

One section per part of the product. ``callsure config defaults`` prints
this file's contents as a commented TOML file; ``callsure.engine.config``
loads and validates against it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from callsure.engine.config import Section, Setting

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value):
        return None if value in choices else f"one of {', '.join(choices)}"

    return check


def at_least(minimum: float) -> Callable[[Any], str | None]:
    def check(value):
        return None if value >= minimum else f"a number >= {minimum}"

    return check


def between(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value):
        return None if low <= value <= high else f"a number from {low} to {high}"

    return check


def host_port(value: str) -> str | None:
    """Check ``HOST:PORT``: an IP address (IPv6 in brackets) and a port 0-65535."""
    expected = "HOST:PORT with an IP address, such as 127.0.0.1:50051 or [::1]:50051"
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        return expected
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return expected
    return None


def ip_address(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "an IP address, such as 127.0.0.1"
    return None


def is_loopback(address: str) -> bool:
    """Tell whether the host of ``HOST:PORT`` or a bare IP is a loopback address."""
    host = address.rpartition(":")[0] if ":" in address and "." in address else address
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SECTIONS: dict[str, Section] = {}


def _add(section: Section) -> None:
    SECTIONS[section.name] = section


_add(
    Section(
        "log",
        "Logging of every callsure process.",
        (
            Setting("level", str, "INFO", "Lowest level logged.", one_of(*LOG_LEVELS)),
            Setting(
                "format",
                str,
                "text",
                "text for people, json for one JSON object per line.",
                one_of("text", "json"),
            ),
        ),
    )
)

_add(
    Section(
        "server",
        "The gRPC API.",
        (
            Setting(
                "grpc_address",
                str,
                "127.0.0.1:50051",
                "Address the gRPC server listens on; port 0 picks a free port.",
                host_port,
            ),
            Setting(
                "allow_non_loopback",
                bool,
                False,
                "Must be true to listen on an address other than loopback.",
            ),
            Setting(
                "tls_cert_file",
                str,
                "",
                "PEM certificate chain; TLS is on when this and tls_key_file are set.",
            ),
            Setting("tls_key_file", str, "", "PEM private key of the certificate."),
            Setting(
                "token",
                str,
                "",
                "Bearer token every call must carry; empty turns the check off. "
                "Prefer the environment variable CALLSURE_SERVER__TOKEN.",
                secret=True,
            ),
        ),
    )
)

_add(
    Section(
        "ray",
        "The Ray runtime hosting the actors.",
        (
            Setting(
                "address",
                str,
                "",
                "Address of a Ray cluster to join; empty starts a local Ray.",
            ),
            Setting(
                "node_ip_address",
                str,
                "127.0.0.1",
                "Address this node's Ray processes bind and advertise.",
                ip_address,
            ),
            Setting(
                "num_cpus",
                int,
                0,
                "CPUs a local Ray may use; 0 means every CPU of the machine.",
                at_least(0),
            ),
            Setting(
                "namespace",
                str,
                "callsure",
                "Ray namespace of the named actors.",
            ),
            Setting(
                "temp_dir",
                str,
                "",
                "Session folder of a local Ray; empty uses Ray's default.",
            ),
            Setting(
                "customer_shards",
                int,
                2,
                "CustomerShard actors; customers are spread by hash of their id.",
                at_least(1),
            ),
            Setting(
                "dispatch_interval_s",
                float,
                1.0,
                "Seconds between the coordinator's releases of due callbacks.",
                at_least(0.05),
            ),
        ),
    )
)

_add(
    Section(
        "storage",
        "Durable store of promises, attempts and the event journal.",
        (
            Setting(
                "path",
                str,
                "./callsure.db",
                "SQLite database file; created when missing.",
            ),
        ),
    )
)
