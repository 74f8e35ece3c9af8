"""The gateway against Debian's baresip, an independent SIP implementation.

baresip binds its RTP and DNS sockets to every interface whatever its
configuration says, so the scenario runs in a private network namespace
that has only loopback (``unshare -n``, then ``ip link set lo up``). The
test re-runs this file inside the namespace with ``--inside``; that run
writes what it saw to ``result.json`` for the assertions outside.

baresip answers automatically and plays a corpus recording as its
microphone; it is driven and observed over its ``ctrl_tcp`` module
(netstring-framed JSON on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
BARESIP_SIP_PORT = 5090
BARESIP_CONTROL_PORT = 4444
CUSTOMER = "+15552000001"


def test_gateway_bridges_baresip_customer(amd_corpus, tmp_path):
    if shutil.which("baresip") is None or shutil.which("unshare") is None:
        pytest.skip("baresip and unshare are needed: apt-get install baresip-core")
    command = (
        "ip link set lo up && exec "
        f"{sys.executable} {__file__} --inside {tmp_path} --corpus {amd_corpus}"
    )
    run = subprocess.run(
        ["unshare", "-n", "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    result_file = tmp_path / "result.json"
    assert result_file.exists(), run.stderr[-3000:]
    result = json.loads(result_file.read_text())

    assert result["outcome"] == "connected", result
    assert result["verdict"] == "HUMAN", result
    assert "CALL_ESTABLISHED" in result["baresip_events"], result
    assert result["agent_headers"]["X-Callsure-Callback-Id"] == "cb-baresip"
    assert result["agent_rms"] > 200, result
    assert result["ivr_nodes"][:2] == ["greeting", "offer"], result


# ----------------------------------------------------------------------------
# Inside the namespace.


class BaresipControl:
    """A ctrl_tcp client: send commands, collect event types."""

    def __init__(self, port: int):
        deadline = time.monotonic() + 10
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.sock.settimeout(None)
        self.events: list[str] = []
        self._buffer = b""
        threading.Thread(target=self._read, daemon=True).start()

    def command(self, name: str, params: str = "") -> None:
        body = json.dumps({"command": name, "params": params, "token": name}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            self._buffer += data
            while b":" in self._buffer:
                length_text, _, rest = self._buffer.partition(b":")
                length = int(length_text)
                if len(rest) < length + 1:
                    break
                message = json.loads(rest[:length])
                self._buffer = rest[length + 1 :]
                if message.get("event"):
                    self.events.append(message.get("type", ""))

    def wait_for(self, event_type: str, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while event_type not in self.events:
            if time.monotonic() > deadline:
                raise TimeoutError(f"baresip sent no {event_type}: {self.events}")
            time.sleep(0.05)


def start_baresip(folder: Path, source_wav: Path) -> subprocess.Popen:
    config = folder / "baresip"
    config.mkdir()
    (config / "config").write_text(
        "\n".join(
            [
                "poll_method epoll",
                f"sip_listen 127.0.0.1:{BARESIP_SIP_PORT}",
                "net_interface 127.0.0.1",
                f"audio_player aufile,{folder / 'baresip-heard.wav'}",
                f"audio_source aufile,{source_wav}",
                f"audio_alert aufile,{folder / 'baresip-alert.wav'}",
                "module_path /usr/lib/baresip/modules",
                "module g711.so",
                "module aufile.so",
                "module_app account.so",
                "module_app menu.so",
                "module_app ctrl_tcp.so",
                f"ctrl_tcp_listen 127.0.0.1:{BARESIP_CONTROL_PORT}",
                "",
            ]
        )
    )
    (config / "accounts").write_text(
        f"<sip:{CUSTOMER}@127.0.0.1:{BARESIP_SIP_PORT}>;regint=0;answermode=auto\n"
    )
    return subprocess.Popen(
        ["baresip", "-f", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_inside(folder: Path, corpus: Path) -> None:
    sys.path.insert(0, str(TESTS))
    from sip_peers import PhoneBank, concatenate_wavs, pad_wav, wav_rms
    from test_sip_gateway import corpus_file

    from callsure.actors.sip.backend import SchedulerIvrBackend
    from callsure.actors.sip.gateway import CallGateway, GatewaySettings
    from callsure.engine.callbacks import DialMode, DialOrder, DialTarget
    from callsure.engine.clock import SystemClock
    from callsure.engine.prediction import ErlangAPredictor, StaticForecast
    from callsure.engine.scheduler import CallbackScheduler
    from callsure.engine.store import SQLiteStore

    human = corpus_file(corpus, "HUMAN")
    talking = concatenate_wavs([human, human], folder / "talking.wav")
    # baresip hangs up at the end of its source file.
    source = pad_wav(talking, folder / "baresip-source.wav", silence_s=20.0)
    baresip = start_baresip(folder, source)
    result: dict = {}
    outcomes: list = []
    events: list = []
    try:
        control = BaresipControl(BARESIP_CONTROL_PORT)
        forecast = StaticForecast(
            arrivals_per_s=1 / 60,
            agents_on_duty=8,
            mean_handle_s=180,
            mean_patience_s=345,
        )
        scheduler = CallbackScheduler(
            SQLiteStore(folder / "callsure.db"),
            ErlangAPredictor({"general": forecast}),
            SystemClock(),
        )
        with PhoneBank(
            {"agent-7": {"action": "answer", "record": str(folder / "agent.wav")}},
            name="agents",
        ) as agents:
            settings = GatewaySettings(
                endpoint_processes=1,
                customer_uri_template=f"sip:{{number}}@127.0.0.1:{BARESIP_SIP_PORT}",
                agent_uri_template=agents.uri_template("agent"),
            )
            gateway = CallGateway(
                settings,
                outcomes.append,
                lambda kind, payload: events.append((kind, payload)),
                SchedulerIvrBackend(scheduler),
            )
            with gateway:
                now = datetime.now(UTC)
                gateway.dial(
                    DialOrder(
                        attempt_id="cb-baresip/1",
                        idempotency_key="cb-baresip/1",
                        callback_id="cb-baresip",
                        customer_id="customer-baresip",
                        phone_number=CUSTOMER,
                        attempt_number=1,
                        lease_expires_at=now + timedelta(minutes=2),
                        target=DialTarget("general", "agent-7"),
                        dial_mode=DialMode.CUSTOMER_FIRST,
                        priority=0,
                        grade="regular",
                        entry_time=now,
                        promised_time=now,
                        ivr_history=("greeting", "offer=1"),
                        language="en",
                    )
                )
                control.wait_for("CALL_ESTABLISHED")
                deadline = time.monotonic() + 30
                while not outcomes and time.monotonic() < deadline:
                    time.sleep(0.1)
                incoming = agents.wait_for(lambda e: e["ev"] == "incoming")
                # Let the agent hear the customer, then end from baresip.
                # The person's file is a short word and 6-7 s of waiting,
                # played twice, so 10 s after the bridge the agent has heard
                # the second word however early the HUMAN verdict came.
                time.sleep(10.0)
                control.command("hangup")
                recorded = agents.wait_for(lambda e: e["ev"] == "recorded")

                # baresip calling the gateway's IVR, as a caller would.
                control.command("dial", f"sip:ivr@{gateway.sip_addresses[0]}")
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and not any(
                    kind == "ivr.node" and payload["node"] == "offer"
                    for kind, payload in events
                ):
                    time.sleep(0.1)
                control.command("hangup")
                time.sleep(1.0)
            result = {
                "outcome": outcomes[0].outcome.value if outcomes else "",
                "verdict": outcomes[0].verdict if outcomes else "",
                "baresip_events": control.events,
                "agent_headers": incoming["headers"],
                "agent_rms": wav_rms(recorded["path"]),
                "ivr_nodes": [p["node"] for k, p in events if k == "ivr.node"],
            }
    finally:
        baresip.terminate()
        try:
            baresip.wait(5)
        except subprocess.TimeoutExpired:
            baresip.kill()
            baresip.wait()
        (folder / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="baresip scenario, run in a netns")
    parser.add_argument("--inside", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    arguments = parser.parse_args()
    run_inside(arguments.inside, arguments.corpus)
