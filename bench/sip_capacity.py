"""Concurrent calls the SIP gateway's endpoint processes hold with live analysis.

The modelled system: a call gateway dials customers; every answered call's
received audio is tapped frame by frame (20 ms, 50 frames/s) into the
call-progress batch analyser of its endpoint process. With the pjsua2
wheel from PyPI each process holds 4 calls (``PJSUA_MAX_CALLS``), so N
calls need N / 4 processes. The far end is one Debian baresip process
that answers every call and plays a corpus recording, so the load
generator is a separate, efficient C implementation.

For each N the script starts the endpoint processes, dials N calls at
once (call set-up rate: answered calls per second), holds them for
``--hold-s`` seconds and samples, over that window:

- analysed frames per call per second (50 means real time) and frames
  dropped because the analyser tick fell behind the taps;
- CPU seconds of the endpoint processes and of baresip per second of wall
  time, and per call;
- resident (RSS) and proportional (PSS, shared pages divided among the
  sharers) memory of the endpoint processes, per call.

``--setups`` compares endpoint layouts (see ``SETUPS``), each in the same
run. ``--ray`` adds the memory of one endpoint hosted in a Ray actor, the
alternative process layout.

baresip binds RTP to every interface, so the script re-runs itself in a
private network namespace (``unshare -n``; needs root) with only
loopback. Run::

    .venv/bin/python bench/sip_capacity.py --calls 40,120,200,300 --hold-s 15
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BARESIP_SIP_PORT = 5090

# Endpoint layouts compared with --setups, each adding one change to the
# one before. A setup gives the settings added to every endpoint process's
# spec and the packet time baresip sends at (0 for its default, 20 ms). It
# may also fix the tap frame length, which --tap-ms gives otherwise.
# 40 ms RTP packets both ways, a 40 ms bridge clock, RTP read every 40 ms,
# a jitter buffer of at least 80 ms, and 16 ms of timer slack for baresip.
PTIME40 = {
    "spec": {
        "tx_vad": True,
        "ptime_ms": 40,
        "bridge_frame_ms": 40,
        "poll_ms": 40,
        "jb_min_prefetch_ms": 80,
    },
    "far_ptime_ms": 40,
    "far_timer_slack_us": 16000,
    "tap_frame_ms": 120,
}

SETUPS = {
    # pjmedia's own ioqueue thread receives RTP (the layout before polling).
    "thread": {"spec": {"media_thread": True}, "far_ptime_ms": 0},
    # The main thread reads RTP every 20 ms (the default).
    "polled": {"spec": {}, "far_ptime_ms": 0},
    # As "polled", and the endpoints send no RTP while nothing is played
    # into a call (silence suppression), so baresip receives almost none.
    "polled-vad": {"spec": {"tx_vad": True}, "far_ptime_ms": 0},
    # As "polled-vad" with baresip's timer slack at 8 ms: each call's audio
    # source thread polls every 4 ms, and the kernel may now delay those
    # wake-ups by up to 8 ms and group them, so packets leave with that jitter.
    "polled-vad-slack": {
        "spec": {"tx_vad": True},
        "far_ptime_ms": 0,
        "far_timer_slack_us": 8000,
    },
    # As "polled-vad-slack" with the PTIME40 settings.
    "polled-vad-slack-ptime40": {
        **PTIME40,
    },
    # As "polled-vad-slack-ptime40" with the calls spread over two baresip
    # processes, because one process never accepted more than 255 calls.
    "polled-vad-slack-ptime40-far2": {
        **PTIME40,
        "far_processes": 2,
    },
}


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB from /proc/PID/smaps_rollup; zeros for a dead process."""
    rss = pss = 0
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except FileNotFoundError:
        return 0, 0
    for line in text.splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def start_baresip(
    folder: Path,
    source_wav: Path,
    max_calls: int,
    ptime_ms: int = 0,
    timer_slack_us: int = 0,
    sip_port: int = BARESIP_SIP_PORT,
) -> subprocess.Popen:
    config = folder / f"baresip-{sip_port}"
    config.mkdir(exist_ok=True)
    (config / "config").write_text(
        "\n".join(
            [
                "poll_method epoll",
                f"sip_listen 127.0.0.1:{sip_port}",
                "net_interface 127.0.0.1",
                f"call_max_calls {max_calls}",
                "audio_player aufile,/dev/null",
                f"audio_source aufile,{source_wav}",
                "module_path /usr/lib/baresip/modules",
                "module g711.so",
                "module aufile.so",
                "module_app account.so",
                "",
            ]
        )
    )
    # ptime: the packet time baresip sends at (its default is 20 ms).
    ptime = f";ptime={ptime_ms}" if ptime_ms else ""
    (config / "accounts").write_text(
        f"<sip:load@127.0.0.1:{sip_port}>;regint=0;answermode=auto{ptime}\n"
    )
    process = subprocess.Popen(
        ["baresip", "-f", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if timer_slack_us:
        # Threads inherit the slack of the thread that creates them, and
        # baresip's main thread creates each call's audio source thread.
        Path(f"/proc/{process.pid}/timerslack_ns").write_text(
            str(timer_slack_us * 1000)
        )
    return process


class Fleet:
    """Endpoint processes and the state of the calls placed on them."""

    def __init__(
        self,
        processes: int,
        tap: bool = True,
        tap_frame_ms: int = 100,
        extra_spec: dict | None = None,
    ):
        from callsure.actors.sip.endpoints import EndpointProcess

        self.lock = threading.Lock()
        self.confirmed: dict[str, float] = {}
        self.ended: set[str] = set()
        self.stats: dict[str, dict] = {}
        self.endpoints = [
            EndpointProcess(
                index,
                {
                    "name": f"bench-{index}",
                    "bind_address": "127.0.0.1",
                    "trunk_sources": [],
                    "codecs": ["PCMU/8000"],
                    "tap": tap,
                    "tap_frame_ms": tap_frame_ms,
                    **(extra_spec or {}),
                },
                self.on_event,
            )
            for index in range(processes)
        ]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda endpoint: endpoint.start(), self.endpoints))

    def on_event(self, endpoint, event: dict) -> None:
        with self.lock:
            if event.get("ev") == "state":
                if event["state"] == "CONFIRMED":
                    self.confirmed.setdefault(event["call"], time.monotonic())
                elif event["state"] == "DISCONNECTED":
                    self.ended.add(event["call"])
            elif event.get("ev") == "stats":
                self.stats[endpoint.name] = event

    def sample(self) -> dict:
        with self.lock:
            self.stats.clear()
        for endpoint in self.endpoints:
            endpoint.send({"op": "stats"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.stats) == len(self.endpoints):
                    break
            time.sleep(0.02)
        with self.lock:
            stats = dict(self.stats)
        memory = [proc_memory_kb(e.pid) for e in self.endpoints]
        media: dict[str, int] = {}
        for event in stats.values():
            for name, value in event.get("media", {}).items():
                media[name] = media.get(name, 0) + value
        return {
            "media": media,
            "time": time.monotonic(),
            "frames": sum(s["frames_analysed"] for s in stats.values()),
            "lost": sum(s["frames_lost"] for s in stats.values()),
            "cpu_s": sum(s["cpu_s"] for s in stats.values()),
            "rss_kb": sum(m[0] for m in memory),
            "pss_kb": sum(m[1] for m in memory),
        }

    def stop(self) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda endpoint: endpoint.stop(), self.endpoints))


def measure(
    calls: int,
    hold_s: float,
    baresip_pids: list[int],
    tap: bool,
    tap_frame_ms: int,
    setup: str = "polled",
    dial_rate: float = 0.0,
    settle_s: float = 2.0,
) -> dict:
    processes = -(-calls // 4)
    started = time.monotonic()
    fleet = Fleet(processes, tap, tap_frame_ms, SETUPS[setup]["spec"])
    start_s = time.monotonic() - started
    idle = fleet.sample()
    try:
        dial_started = time.monotonic()
        for index in range(calls):
            if dial_rate:
                # Paced like a dialer under a carrier's calls-per-second limit.
                time.sleep(max(dial_started + index / dial_rate - time.monotonic(), 0))
            endpoint = fleet.endpoints[index // 4]
            endpoint.send(
                {
                    "op": "dial",
                    "call": f"c{index}",
                    "uri": (
                        "sip:load@127.0.0.1:"
                        f"{BARESIP_SIP_PORT + 2 * (index % len(baresip_pids))}"
                    ),
                    "ring_timeout_s": 30,
                }
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with fleet.lock:
                if len(fleet.confirmed) + len(fleet.ended) >= calls:
                    break
            time.sleep(0.05)
        with fleet.lock:
            answered = len(fleet.confirmed)
            last_answer = max(fleet.confirmed.values(), default=dial_started)
        setup_rate = answered / max(last_answer - dial_started, 1e-6)
        time.sleep(settle_s)
        first = fleet.sample()
        bare_first = sum(proc_cpu_s(pid) for pid in baresip_pids)
        time.sleep(hold_s)
        last = fleet.sample()
        bare_last = sum(proc_cpu_s(pid) for pid in baresip_pids)
        with fleet.lock:
            still_up = len(fleet.confirmed.keys() - fleet.ended)
        crashed = sum(1 for e in fleet.endpoints if e.process.poll() is not None)
    finally:
        for index in range(calls):
            fleet.endpoints[index // 4].send({"op": "hangup", "call": f"c{index}"})
        time.sleep(1.0)
        fleet.stop()
    window = last["time"] - first["time"]
    live = max(still_up, 1)
    cpu_cores = (last["cpu_s"] - first["cpu_s"]) / window

    def media(name: str) -> int:
        return last["media"].get(name, 0) - first["media"].get(name, 0)

    return {
        "setup": setup,
        "dial_rate": dial_rate,
        "calls": calls,
        "tap_frame_ms": tap_frame_ms if tap else 0,
        "processes": processes,
        "answered": answered,
        "up_at_end": still_up,
        "endpoints_crashed": crashed,
        "endpoint_start_s": round(start_s, 1),
        "setup_calls_per_s": round(setup_rate, 1),
        "frames_per_call_s": round(
            (last["frames"] - first["frames"]) / window / live, 1
        ),
        "frames_lost": last["lost"] - first["lost"],
        # RTP packets received per call per second (50 at ptime 20), and
        # frames the jitter buffer had to fill because a packet was missing
        # or late, per call per second.
        "rtp_rx_per_call_s": round(media("rtp_rx") / window / live, 1),
        "jb_lost_per_call_s": round(media("jb_lost") / window / live, 3),
        "endpoint_cpu_cores": round(cpu_cores, 2),
        "endpoint_cpu_ms_per_call_s": round(1000 * cpu_cores / live, 2),
        "baresip_cpu_cores": round((bare_last - bare_first) / window, 2),
        "idle_rss_mb_per_process": round(idle["rss_kb"] / processes / 1024, 1),
        "idle_pss_mb_per_process": round(idle["pss_kb"] / processes / 1024, 1),
        "rss_mb_per_call": round(last["rss_kb"] / live / 1024, 1),
        "pss_mb_per_call": round(last["pss_kb"] / live / 1024, 1),
    }


def measure_ray_actor() -> dict:
    """Memory of one pjsua2 endpoint hosted in a Ray actor, idle."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    ray.init(
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=2,
        log_to_driver=False,
    )
    try:

        @ray.remote
        class EndpointActor:
            def __init__(self):
                import pjsua2 as pj

                self.endpoint = pj.Endpoint()
                self.endpoint.libCreate()
                config = pj.EpConfig()
                config.uaConfig.threadCnt = 0
                config.uaConfig.mainThreadOnly = True
                config.logConfig.level = 0
                config.logConfig.consoleLevel = 0
                self.endpoint.libInit(config)
                self.endpoint.libStart()

            def pid(self) -> int:
                return os.getpid()

        actor = EndpointActor.remote()
        pid = ray.get(actor.pid.remote())
        rss, pss = proc_memory_kb(pid)
        return {
            "ray_actor_rss_mb": round(rss / 1024, 1),
            "ray_actor_pss_mb": round(pss / 1024, 1),
        }
    finally:
        ray.shutdown()


def run_inside(arguments) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from sip_peers import pad_wav

    corpus = Path(arguments.corpus)
    folder = Path(tempfile.mkdtemp(prefix="sip-capacity-"))
    source = pad_wav(corpus / "dev-0003.wav", folder / "source.wav", 120.0)
    sizes = [int(n) for n in arguments.calls.split(",")]
    results = []
    for setup in arguments.setups.split(","):
        far_ptime_ms = SETUPS[setup]["far_ptime_ms"]
        far_processes = SETUPS[setup].get("far_processes", 1)
        baresips = [
            start_baresip(
                folder,
                source,
                max(sizes) // far_processes + 16,
                far_ptime_ms,
                SETUPS[setup].get("far_timer_slack_us", 0),
                BARESIP_SIP_PORT + 2 * index,
            )
            for index in range(far_processes)
        ]
        time.sleep(1.0)
        try:
            for tap_ms in arguments.tap_ms.split(","):
                tap_frame_ms = SETUPS[setup].get("tap_frame_ms", int(tap_ms))
                for calls in sizes:
                    result = measure(
                        calls, arguments.hold_s, [b.pid for b in baresips],
                        not arguments.no_tap, tap_frame_ms, setup,
                        arguments.dial_rate, arguments.settle_s,
                    )  # fmt: skip
                    print(json.dumps(result), flush=True)
                    results.append(result)
                    time.sleep(2.0)
        finally:
            for baresip in baresips:
                baresip.terminate()
                try:
                    baresip.wait(10)
                except subprocess.TimeoutExpired:
                    baresip.kill()
                    baresip.wait()
    extra = measure_ray_actor() if arguments.ray else {}
    if extra:
        print(json.dumps(extra), flush=True)
    print_table(results, extra, arguments)


def print_table(results: list[dict], extra: dict, arguments) -> None:
    print()
    print(f"Machine: {os.cpu_count()} cores, {platform.processor() or 'x86_64'}, "
          f"load average at the end of the run {os.getloadavg()[0]:.2f}")  # fmt: skip
    rate = f"{arguments.dial_rate:g} calls/s" if arguments.dial_rate else "all at once"
    print(
        f"Dialing: {rate}; {arguments.settle_s:g} s after the last answer, "
        f"hold {arguments.hold_s:g} s"
    )
    print("| setup | tap ms | calls | processes | answered | up at end "
          "| endpoints crashed | setup calls/s | frames/call/s | frames lost "
          "| RTP packets/call/s | jitter-buffer lost frames/call/s "
          "| endpoint CPU cores | CPU ms per call-second | baresip CPU cores "
          "| PSS MB per call | RSS MB per call |")  # fmt: skip
    print("| --- " * 17 + "|")
    for r in results:
        print(
            f"| {r['setup']} | {r['tap_frame_ms']} | {r['calls']} | {r['processes']} "
            f"| {r['answered']} "
            f"| {r['up_at_end']} | {r['endpoints_crashed']} "
            f"| {r['setup_calls_per_s']} | {r['frames_per_call_s']} "
            f"| {r['frames_lost']} | {r['rtp_rx_per_call_s']} "
            f"| {r['jb_lost_per_call_s']} | {r['endpoint_cpu_cores']} "
            f"| {r['endpoint_cpu_ms_per_call_s']} | {r['baresip_cpu_cores']} "
            f"| {r['pss_mb_per_call']} | {r['rss_mb_per_call']} |"
        )
    if results:
        r = results[0]
        print(
            f"\nIdle endpoint process: RSS {r['idle_rss_mb_per_process']} MB, "
            f"PSS {r['idle_pss_mb_per_process']} MB."
        )
    if extra:
        print(
            f"Idle endpoint in a Ray actor: RSS {extra['ray_actor_rss_mb']} MB, "
            f"PSS {extra['ray_actor_pss_mb']} MB."
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="40,120,200,300")
    parser.add_argument("--hold-s", type=float, default=15.0)
    parser.add_argument("--ray", action="store_true", help="also measure a Ray actor")
    parser.add_argument(
        "--no-tap", action="store_true", help="calls without taps, for comparison"
    )
    parser.add_argument(
        "--tap-ms", default="100", help="tap frame lengths to compare, such as 20,100"
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        default=2.0,
        help="wait after the last answer before the measured hold starts",
    )
    parser.add_argument(
        "--dial-rate",
        type=float,
        default=0.0,
        help="calls dialed per second (0: all at once)",
    )
    parser.add_argument(
        "--setups",
        default="polled",
        help=f"endpoint layouts to compare, from {','.join(SETUPS)}",
    )
    parser.add_argument(
        "--corpus",
        default=os.environ.get("CALLSURE_SHARED", str(REPO.parent / "shared"))
        + "/corpus/amd",
    )
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    unknown = set(arguments.setups.split(",")) - set(SETUPS)
    if unknown:
        parser.error(f"unknown setups {sorted(unknown)}; known: {sorted(SETUPS)}")
    if arguments.inside:
        run_inside(arguments)
        return 0
    if shutil.which("baresip") is None:
        print("baresip is needed: apt-get install baresip-core", file=sys.stderr)
        return 2
    command = " ".join(
        [
            "ip link set lo up && exec",
            sys.executable,
            str(Path(__file__).resolve()),
            "--inside",
            f"--calls {arguments.calls}",
            f"--hold-s {arguments.hold_s}",
            f"--tap-ms {arguments.tap_ms}",
            f"--setups {arguments.setups}",
            f"--dial-rate {arguments.dial_rate}",
            f"--settle-s {arguments.settle_s}",
            f"--corpus {arguments.corpus}",
            "--ray" if arguments.ray else "",
            "--no-tap" if arguments.no_tap else "",
        ]
    )
    return subprocess.call(["unshare", "-n", "sh", "-c", command])


if __name__ == "__main__":
    sys.exit(main())
