"""Every configuration key, with its default, check and help text.

One section per part of the product. ``callsure config defaults`` prints
this file's contents as a commented TOML file; ``callsure.engine.config``
loads and validates against it.
"""

from __future__ import annotations

import ipaddress
import zoneinfo
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


def iana_zone(value: str) -> str | None:
    expected = "an IANA time zone such as Asia/Jerusalem"
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return expected
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
                lambda value: (
                    None if value.strip() else "a file path, such as ./callsure.db"
                ),
            ),
        ),
    )
)


def sip_uri_template(value: str) -> str | None:
    """Check a SIP URI template such as ``sip:{number}@127.0.0.1:5070``."""
    if not value.startswith(("sip:", "sips:")) or value.count("{") != 1:
        return "a sip: URI with one {field}, such as sip:{number}@127.0.0.1:5070"
    return None


def optional_sip_uri(value: str) -> str | None:
    if value and not value.startswith(("sip:", "sips:")):
        return "empty, or a sip: URI such as sip:127.0.0.1:5060;lr"
    return None


def ip_addresses(value: list) -> str | None:
    for item in value:
        if ip_address(item):
            return "a list of IP addresses, such as ['127.0.0.1']"
    return None


_add(
    Section(
        "sip",
        "The SIP call gateway: pjsua2 endpoint processes, trunk and call flow.",
        (
            Setting(
                "enabled",
                bool,
                False,
                "Start the gateway in callsure serve: it dials due callbacks "
                "and answers inbound calls with the IVR.",
            ),
            Setting(
                "bind_address",
                str,
                "127.0.0.1",
                "IP address every endpoint binds for SIP and RTP.",
                ip_address,
            ),
            Setting(
                "sip_port",
                int,
                0,
                "SIP UDP port of the first endpoint process, the next ones use "
                "the following ports; 0 picks a free port for each.",
                between(0, 65535),
            ),
            Setting(
                "rtp_port",
                int,
                0,
                "First RTP port of the first endpoint; each endpoint gets "
                "rtp_ports_per_endpoint ports from there; 0 picks free ports.",
                between(0, 65535),
            ),
            Setting(
                "rtp_ports_per_endpoint",
                int,
                100,
                "Size of each endpoint's RTP port range (RTP and RTCP pairs).",
                at_least(2),
            ),
            Setting(
                "endpoint_processes",
                int,
                2,
                "pjsua2 endpoint processes per gateway; each holds as many "
                "calls as the pjsua2 build allows (4 for the PyPI wheel).",
                at_least(1),
            ),
            Setting(
                "max_calls_per_endpoint",
                int,
                0,
                "Cap on calls per endpoint; 0 uses the limit probed at start.",
                at_least(0),
            ),
            Setting(
                "customer_uri_template",
                str,
                "sip:{number}@127.0.0.1:5070",
                "SIP URI dialed for a customer; {number} is the E.164 number.",
                sip_uri_template,
            ),
            Setting(
                "agent_uri_template",
                str,
                "sip:{agent}@127.0.0.1:5070",
                "SIP URI dialed for an agent; {agent} is the agent id, or the "
                "queue name when no agent is named.",
                sip_uri_template,
            ),
            Setting(
                "outbound_proxy",
                str,
                "",
                "SIP URI of the outbound proxy every request goes through; "
                "empty sends requests straight to the URI's host.",
                optional_sip_uri,
            ),
            Setting("auth_realm", str, "*", "Digest realm; * answers any realm."),
            Setting("auth_username", str, "", "Digest user name; empty: no auth."),
            Setting(
                "auth_password",
                str,
                "",
                "Digest password. Prefer the environment variable "
                "CALLSURE_SIP__AUTH_PASSWORD.",
                secret=True,
            ),
            Setting(
                "trunk_sources",
                list,
                ["127.0.0.1"],
                "IP addresses inbound calls are accepted from; any other "
                "source gets 403 Forbidden.",
                ip_addresses,
            ),
            Setting(
                "codecs",
                list,
                ["PCMU/8000", "PCMA/8000"],
                "Codecs offered, most preferred first; others are disabled.",
            ),
            Setting(
                "packet_ms",
                int,
                20,
                "Audio per RTP packet and per conference-bridge tick, in ms: "
                "20 (the usual ptime), or 40 to halve the packets and wake-ups "
                "per call when many calls share few cores; analysis still "
                "runs on every 20 ms frame.",
                lambda value: None if value in (20, 40) else "20 or 40",
            ),
            Setting(
                "send_silence_suppression",
                bool,
                False,
                "Send no RTP while the gateway plays nothing into a call "
                "(VAD on sent audio); received audio is always analysed.",
            ),
            Setting(
                "ring_timeout_s",
                float,
                30.0,
                "Seconds a customer's phone may ring before the call is "
                "cancelled as no answer.",
                at_least(1),
            ),
            Setting(
                "analysis_timeout_s",
                float,
                8.0,
                "Seconds after answer without a call-progress verdict before "
                "the call is treated as NOTSURE (and bridged).",
                at_least(1),
            ),
            Setting(
                "confirm_with_dtmf",
                bool,
                False,
                "Ask a person to press 1 before the agent is connected.",
            ),
            Setting(
                "confirm_timeout_s",
                float,
                10.0,
                "Seconds to wait for the confirmation key after the prompt.",
                at_least(1),
            ),
            Setting(
                "agent_ring_timeout_s",
                float,
                20.0,
                "Seconds an agent's phone may ring before the leg is cancelled.",
                at_least(1),
            ),
            Setting(
                "bridge_method",
                str,
                "conference",
                "conference bridges both legs in one endpoint process; refer "
                "transfers the customer to the agent (RFC 3515).",
                one_of("conference", "refer"),
            ),
            Setting(
                "machine_action",
                str,
                "hang_up",
                "On an answering machine: hang_up, or leave_message after the "
                "beep (the prompt machine_message).",
                one_of("hang_up", "leave_message"),
            ),
            Setting(
                "beep_wait_s",
                float,
                6.0,
                "Seconds to wait for a voicemail beep before leaving the message.",
                at_least(0),
            ),
            Setting(
                "scenario",
                str,
                "",
                "Inbound IVR scenario file (YAML or JSON); empty uses the "
                "shipped default.",
            ),
            Setting(
                "prompts_dir",
                str,
                "",
                "Folder of prompt WAV files (8 kHz mono, 16-bit PCM or G.711); "
                "empty uses the shipped prompts.",
            ),
        ),
    )
)

_add(
    Section(
        "policy",
        "Callback promises: feasibility, expiry, leases, retries, capacity.",
        (
            Setting(
                "keep_target",
                float,
                0.8,
                "Lowest keep probability accepted for a customer-chosen time.",
                between(0.01, 1.0),
            ),
            Setting(
                "predicted_quantile",
                float,
                0.5,
                "Quantile of the predicted wait used as the promised time.",
                between(0.01, 0.99),
            ),
            Setting(
                "expiry_s",
                float,
                14400.0,
                "Seconds after its time (or window end) a promise expires with an SMS.",
                at_least(60),
            ),
            Setting(
                "lease_s",
                float,
                120.0,
                "Seconds a gateway holds a dial order before it must report or renew.",
                at_least(5),
            ),
            Setting(
                "dedicated_fallback_s",
                float,
                300.0,
                "Seconds a VIP callback waits for the dedicated agent before "
                "any agent of the group may take it.",
                at_least(0),
            ),
            Setting(
                "overdue_grace_s",
                float,
                300.0,
                "Seconds late after which a released promise is journaled as overdue.",
                at_least(0),
            ),
            Setting(
                "dial_lead_s",
                float,
                0.0,
                "Seconds before its time a promise may be dialed, so that ringing "
                "and answer detection end near the promised time.",
                between(0.0, 120.0),
            ),
            Setting(
                "dial_mode",
                str,
                "customer_first",
                "customer_first dials then finds an agent; agent_first "
                "reserves an agent, then dials.",
                one_of("customer_first", "agent_first"),
            ),
            Setting(
                "max_attempts",
                int,
                5,
                "Dial attempts per promise at most, whatever the outcomes.",
                at_least(1),
            ),
            Setting(
                "capacity_interval_s",
                float,
                900.0,
                "Length in seconds of the intervals callback capacity is counted "
                "in; a multiple of 60.",
                lambda value: (
                    None
                    if value >= 60 and value % 60 == 0
                    else "a multiple of 60 seconds, at least 60"
                ),
            ),
            Setting(
                "sms_on_bad_number",
                bool,
                False,
                "Also request an SMS when the number proved unreachable "
                "(SIT IC or VC, invalid number).",
            ),
        ),
    )
)

_add(
    Section(
        "prediction",
        "The wait-time prediction model and its Erlang A forecasts.",
        (
            Setting(
                "model_file",
                str,
                "",
                "Wait model written by `callsure model fit` (.npz); empty uses "
                "Erlang A alone.",
            ),
            Setting(
                "country",
                str,
                "IL",
                "ISO country code whose public holidays are a day type of their own.",
            ),
            Setting(
                "zone",
                str,
                "Asia/Jerusalem",
                "IANA time zone in which days and hours of the profiles are counted.",
                iana_zone,
            ),
            Setting(
                "service_level_target",
                float,
                0.8,
                "Share of inbound callers to serve within service_level_time_s "
                "before agents are lent to callbacks.",
                between(0.01, 0.99),
            ),
            Setting(
                "service_level_time_s",
                float,
                20.0,
                "Answer-time target of the inbound service level, in seconds.",
                at_least(0),
            ),
            Setting(
                "keep_window_s",
                float,
                120.0,
                "Seconds after its time within which a callback must reach an agent "
                "to count as kept.",
                at_least(1),
            ),
            Setting(
                "horizon_s",
                float,
                28800.0,
                "How far ahead, in seconds, keep probabilities are forecast.",
                at_least(900),
            ),
        ),
    )
)

_add(
    Section(
        "forecast_prior",
        "The forecast a queue starts from before the live feed has taught the "
        "prediction model its arrivals and staffing.",
        (
            Setting(
                "arrivals_per_s",
                float,
                0.02,
                "Inbound arrivals per second assumed for an interval whose "
                "arrivals are not learned yet.",
                at_least(0),
            ),
            Setting(
                "agents_on_duty",
                float,
                10.0,
                "Agents assumed on duty in a queue whose agents never reported "
                "a state or answered a contact.",
                at_least(0),
            ),
            Setting(
                "handle_s",
                float,
                300.0,
                "Mean handling time in seconds, the prior of the online mean "
                "when no model file is set.",
                at_least(1),
            ),
            Setting(
                "patience_s",
                float,
                180.0,
                "Mean patience in seconds, the prior of the online estimate "
                "when no model file is set.",
                at_least(1),
            ),
        ),
    )
)
