"""Digest credentials and an outbound proxy: kamailio between gateway and phones.

Debian's kamailio runs in the foreground as a child of the test, on
127.0.0.1 with a port of its own. It challenges every INVITE with 407
Proxy Authentication Required and checks the digest against one password.
It then adds a Record-Route and relays the call to its Request-URI (the
phone bank), and requests inside a dialog follow that route. The gateway
sends every request to the proxy (``outbound_proxy``) and answers the
challenge with ``auth_username`` and ``auth_password``. A wrong password
gets a new challenge, or 403 Forbidden for the user ``strict``.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time

import pytest
from sip_peers import PhoneBank
from test_sip_gateway import Reports, make_order, person_answering

from callsure.actors.sip.gateway import CallGateway, GatewaySettings
from callsure.engine.callbacks import Outcome

pytestmark = pytest.mark.timeout(120)

PASSWORD = "kamailio-test-secret"

KAMAILIO_CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:{port}
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=no
dns_try_ipv6=no
disable_tcp=yes
disable_sctp=yes

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "auth.so"

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not Here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("INVITE")) {{
        if (!pv_proxy_authenticate("$fd", "{password}", "0")) {{
            if ($au == "strict") {{
                sl_send_reply("403", "Forbidden");
                exit;
            }}
            proxy_challenge("$fd", "0");
            exit;
        }}
        append_hf("X-Proxy-Auth-User: $au\r\n");
        consume_credentials();
        record_route();
    }}
    t_relay();
}}
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    """Start kamailio on 127.0.0.1; yield its ``HOST:PORT``."""
    binary = shutil.which("kamailio")
    if binary is None:
        pytest.skip(
            "kamailio is needed as the outbound proxy: apt-get install kamailio"
        )
    folder = tmp_path_factory.mktemp("kamailio")
    port = free_udp_port()
    config = folder / "kamailio.cfg"
    config.write_text(KAMAILIO_CONFIG.format(port=port, password=PASSWORD))
    log_path = folder / "kamailio.log"
    with open(log_path, "wb") as log:
        # -DD keeps the main process in the foreground (it still forks its
        # workers and ends them on SIGTERM); -E logs to stderr.
        process = subprocess.Popen(
            [
                binary,
                "-f",
                str(config),
                "-DD",
                "-E",
                "-Y",
                str(folder),
                "-P",
                str(folder / "kamailio.pid"),
                "-w",
                str(folder),
                "-m",
                "32",
                "-M",
                "4",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not port_taken(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"kamailio did not listen on 127.0.0.1:{port}: "
                    f"{log_path.read_text()[-2000:]}"
                )
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def dial_through_proxy(
    proxy: str, amd_corpus, number: str, password: str, username: str = "callsure"
):
    """Dial ``number`` through the proxy as ``username`` with ``password``.

    Returns the report and the customer phone bank's events.
    """
    reports = Reports()
    person = person_answering(amd_corpus, hangup_after_s=10.0)
    with (
        PhoneBank({number: person}, name="proxy-customers") as phones,
        PhoneBank({"agent-proxy": {"action": "answer"}}, name="proxy-agents") as agents,
    ):
        settings = GatewaySettings(
            endpoint_processes=1,
            customer_uri_template=phones.uri_template("number"),
            agent_uri_template=agents.uri_template("agent"),
            ring_timeout_s=10.0,
            outbound_proxy=f"sip:{proxy};lr",
            auth_username=username,
            auth_password=password,
        )
        with CallGateway(settings, reports.on_outcome, reports.on_event) as gateway:
            order = make_order(number, agent="agent-proxy")
            gateway.dial(order)
            report = reports.wait(order.attempt_id, timeout_s=40)
        phone_events = list(phones.events)
    return report, phone_events


def test_proxy_with_credentials_connects(proxy, amd_corpus):
    report, phone_events = dial_through_proxy(
        proxy, amd_corpus, "+15550000407", PASSWORD
    )

    assert report.outcome is Outcome.CONNECTED
    assert report.agent_id == "agent-proxy"
    incoming = [e for e in phone_events if e["ev"] == "incoming"]
    # The INVITE reached the phone from the proxy's address, after the
    # proxy had checked the digest of user callsure.
    assert incoming[0]["source"] == proxy
    assert incoming[0]["headers"]["X-Proxy-Auth-User"] == "callsure"


@pytest.mark.parametrize(("username", "status"), [("callsure", 407), ("strict", 403)])
def test_proxy_wrong_password_fails(proxy, amd_corpus, caplog, capfd, username, status):
    # PJSUA answers the first challenge and gives up on the second one (or
    # on the 403), so the attempt ends once instead of looping.
    caplog.set_level(logging.INFO, logger="callsure")
    report, phone_events = dial_through_proxy(
        proxy, amd_corpus, f"+1555000{status}9", "wrong-password", username
    )

    assert report.outcome is Outcome.NETWORK_FAILURE
    assert report.sip_status == status
    assert report.detail.startswith(f"authentication failed: SIP {status}")
    assert not [e for e in phone_events if e["ev"] == "incoming"]
    assert f"user {username}" in caplog.text
    assert "wrong-password" not in caplog.text
    captured = capfd.readouterr()
    assert "wrong-password" not in captured.out + captured.err
