"""Benchmark of the gRPC API against a real `callsure serve` on 127.0.0.1.

The modelled system: a contact center's IVR or CTI creating callback
promises in a surge. Many calls are in flight at once (one asyncio client
with ``--concurrency`` outstanding calls, in ``--processes`` client
processes), each CreateCallback stored durably (SQLite WAL,
synchronous=FULL) before its reply. Measured:

- CreateCallback throughput and latency percentiles under that load, for
  each ``--concurrency`` value given (comma-separated);
- the CPU time one create costs in each process (the gRPC server, the
  coordinator, the customer shards, Ray's own services, the client), read
  from ``/proc/<pid>/stat`` and ``getrusage`` around the load, which shows
  how the machine's cores were shared;
- EstimateWait latency, one call at a time;
- contact events per second through StreamContactEvents (the CTI feed of
  a surge, ``--contact-events`` of them in one stream), against the same
  kind of events sent one ReportContactEvent call at a time;
- the cost of one Ray actor message (async actor, empty method), one at a
  time and with many in flight, on a separate local Ray in this process;
- as the ceiling of this machine, the same create load against an empty
  grpc.aio CallbackService in a subprocess that echoes the request, with
  that server's CPU time per create (gRPC's own cost).

Customer ids and phone numbers come from a seeded generator, so runs are
repeatable. Usage::

    .venv/bin/python bench/grpc_bench.py --creates 6000 --concurrency 64,128
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

import grpc

from callsure.v1 import (
    callback_pb2,
    callback_pb2_grpc,
    contact_pb2,
    contact_pb2_grpc,
    prediction_pb2,
    prediction_pb2_grpc,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from serve_support import ServeProcess, private_folder  # noqa: E402

WARMUP_CALLS = 200


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def make_request(rng: random.Random, process_index: int, index: int):
    customer = f"bench-{process_index}-{index}-{rng.randrange(10**9)}"
    phone = "+1415" + f"{rng.randrange(10**7):07d}"
    callback = callback_pb2.Callback(
        customer_id=customer, phone_number=phone, queue=rng.choice(["billing", "loans"])
    )
    return callback_pb2.CreateCallbackRequest(
        callback=callback, request_id=uuid.UUID(int=rng.getrandbits(128)).hex
    )


async def create_load(address: str, count: int, concurrency: int, seed: int):
    """Send ``count`` CreateCallbacks with ``concurrency`` in flight."""
    rng = random.Random(seed)
    requests = [make_request(rng, seed, index) for index in range(count)]
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = callback_pb2_grpc.CallbackServiceStub(channel)
        queue = iter(requests)

        async def worker():
            nonlocal errors
            for request in queue:
                started = time.perf_counter()
                try:
                    await stub.CreateCallback(request, timeout=60)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed, errors


def _create_process(address, count, concurrency, seed, results):
    results.put(asyncio.run(create_load(address, count, concurrency, seed)))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> dict[int, str]:
    """``root`` and its descendants, by id, with a short role name."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return {pid: _role(pid, root) for pid in tree}


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "gRPC server"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "Ray services"
    for name in (b"Coordinator", b"CustomerShard", b"AgentPool"):
        if name in command:
            return name.decode()
    return "Ray services"


def client_cpu_seconds() -> float:
    """CPU time of this process and its finished children, in seconds."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def cpu_per_create(server_pid: int, run) -> tuple[object, dict[str, float]]:
    """Call ``run()`` and return its result with the CPU seconds each role used."""
    tree = process_tree(server_pid)
    before = {pid: _cpu_or_zero(pid) for pid in tree}
    client_before = client_cpu_seconds()
    result = run()
    spent: dict[str, float] = {}
    for pid, role in tree.items():
        used = _cpu_or_zero(pid) - before[pid]
        spent[role] = spent.get(role, 0.0) + max(used, 0.0)
    spent["client"] = client_cpu_seconds() - client_before
    return result, spent


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


def run_creates(address: str, total: int, concurrency: int, processes: int):
    """Run the create load in ``processes`` client processes, apart from the
    server's; return merged results."""
    if processes == 1:
        latencies, elapsed, errors = asyncio.run(
            create_load(address, total, concurrency, 1)
        )
        return latencies, elapsed, errors
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(
            target=_create_process,
            args=(address, total // processes, concurrency, seed, results),
        )
        for seed in range(1, processes + 1)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    parts = [results.get() for _ in workers]
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
    latencies = [value for part in parts for value in part[0]]
    return latencies, elapsed, sum(part[2] for part in parts)


async def estimate_latencies(address: str, count: int) -> list[float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = prediction_pb2_grpc.PredictionServiceStub(channel)
        request = prediction_pb2.EstimateWaitRequest(queue="billing", ahead_count=5)
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            await stub.EstimateWait(request, timeout=30)
            latencies.append(time.perf_counter() - started)
    return latencies


CONTACT_KINDS = (
    contact_pb2.CONTACT_EVENT_TYPE_ARRIVED,
    contact_pb2.CONTACT_EVENT_TYPE_QUEUED,
    contact_pb2.CONTACT_EVENT_TYPE_ABANDONED,
)


def contact_events(count: int, prefix: str) -> list:
    """Arrived, queued and abandoned events of ``count // 3`` customers."""
    events = []
    for index in range(count):
        event = contact_pb2.ContactEvent(
            contact_id=f"{prefix}-{index // 3}",
            type=CONTACT_KINDS[index % 3],
            customer_id=f"{prefix}-customer-{index // 3}",
            queue="billing",
        )
        event.event_time.GetCurrentTime()
        events.append(event)
    return events


async def contact_rates(address: str, count: int) -> tuple[float, float]:
    """Return events per second streamed, and sent one call at a time."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = contact_pb2_grpc.ContactServiceStub(channel)
        streamed = [
            contact_pb2.StreamContactEventsRequest(event=event)
            for event in contact_events(count, "stream")
        ]
        started = time.perf_counter()
        reply = await stub.StreamContactEvents(iter(streamed), timeout=600)
        stream_rate = reply.accepted_count / (time.perf_counter() - started)
        single = contact_events(max(3, count // 10), "unary")
        started = time.perf_counter()
        for event in single:
            await stub.ReportContactEvent(
                contact_pb2.ReportContactEventRequest(event=event), timeout=30
            )
        unary_rate = len(single) / (time.perf_counter() - started)
    return stream_rate, unary_rate


def actor_message_cost(count: int, in_flight: int) -> tuple[list[float], float]:
    """Round trips to an empty async actor method: one at a time, then many."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    folder = private_folder()
    ray.init(
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=2,
        _temp_dir=str(folder / "ray"),
        configure_logging=False,
        log_to_driver=False,
    )
    try:

        @ray.remote
        class Echo:
            async def ping(self):
                return None

        actor = Echo.options(max_concurrency=1000).remote()

        async def measure():
            await actor.ping.remote()
            latencies = []
            for _ in range(count):
                started = time.perf_counter()
                await actor.ping.remote()
                latencies.append(time.perf_counter() - started)
            started = time.perf_counter()
            await asyncio.gather(*(actor.ping.remote() for _ in range(in_flight)))
            return latencies, in_flight / (time.perf_counter() - started)

        return asyncio.run(measure())
    finally:
        ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


class EchoCallbackService(callback_pb2_grpc.CallbackServiceServicer):
    """A CallbackService that stores nothing: the gRPC cost alone."""

    async def CreateCallback(self, request, context):
        return callback_pb2.CreateCallbackResponse(callback=request.callback)


async def _serve_echo(ports, stop) -> None:
    server = grpc.aio.server()
    callback_pb2_grpc.add_CallbackServiceServicer_to_server(
        EchoCallbackService(), server
    )
    ports.put(server.add_insecure_port("127.0.0.1:0"))
    await server.start()
    await asyncio.to_thread(stop.wait)
    await server.stop(0)


def _echo_process(ports, stop) -> None:
    asyncio.run(_serve_echo(ports, stop))


def echo_ceiling(total: int, concurrency: int, processes: int):
    """Run the create load against an echo server in a subprocess; return
    the load's results and the echo server's CPU seconds during it."""
    context = multiprocessing.get_context("spawn")
    ports, stop = context.Queue(), context.Event()
    server = context.Process(target=_echo_process, args=(ports, stop))
    server.start()
    try:
        address = f"127.0.0.1:{ports.get(timeout=60)}"
        asyncio.run(create_load(address, WARMUP_CALLS, 16, 999))
        before = cpu_seconds(server.pid)
        result = run_creates(address, total, concurrency, processes)
        return result, cpu_seconds(server.pid) - before
    finally:
        stop.set()
        server.join(10)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def print_creates(label, latencies, elapsed, errors, level, args) -> None:
    print(
        f"{label}: {len(latencies)} ok, {errors} errors in {elapsed:.2f} s "
        f"= {len(latencies) / elapsed:.0f}/s with {args.processes} x "
        f"{level} in flight; p50 {ms(percentile(latencies, 0.5))}, "
        f"p99 {ms(percentile(latencies, 0.99))}"
    )


def print_cpu(spent: dict[str, float], creates: int, elapsed: float) -> None:
    """Print CPU per create by role, and how many of the cores each kept busy."""
    parts = ", ".join(
        f"{role} {seconds / creates * 1000:.3f} ms ({seconds / elapsed:.2f} cores)"
        for role, seconds in sorted(spent.items(), key=lambda item: -item[1])
    )
    total = sum(spent.values())
    print(
        f"  CPU per create: {parts}; total {total / creates * 1000:.3f} ms, "
        f"{total / elapsed:.2f} of {os.cpu_count()} cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=6000)
    parser.add_argument(
        "--concurrency",
        default="128",
        help="Calls in flight per client process; several as 64,128.",
    )
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--estimates", type=int, default=500)
    parser.add_argument("--actor-messages", type=int, default=1000)
    parser.add_argument("--contact-events", type=int, default=3000)
    args = parser.parse_args()

    levels = [int(value) for value in args.concurrency.split(",")]
    python = platform.python_version()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {python}")
    print("load average before: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))

    folder = private_folder()
    server = ServeProcess(folder)
    try:
        asyncio.run(create_load(server.address, WARMUP_CALLS, 16, 999))
        for level in levels:
            (latencies, elapsed, errors), spent = cpu_per_create(
                server.process.pid,
                lambda level=level: run_creates(
                    server.address, args.creates, level, args.processes
                ),
            )
            print_creates("CreateCallback", latencies, elapsed, errors, level, args)
            print_cpu(spent, len(latencies), elapsed)
        estimates = asyncio.run(estimate_latencies(server.address, args.estimates))
        stream_rate, unary_rate = asyncio.run(
            contact_rates(server.address, args.contact_events)
        )
    finally:
        server.terminate()
        shutil.rmtree(folder, ignore_errors=True)
    actor_latencies, actor_rate = actor_message_cost(args.actor_messages, 1000)
    for level in levels:
        (echo_latencies, echo_elapsed, echo_errors), echo_cpu = echo_ceiling(
            args.creates, level, args.processes
        )
        print_creates(
            "echo CreateCallback (no engine)",
            echo_latencies,
            echo_elapsed,
            echo_errors,
            level,
            args,
        )
        print(
            "  CPU per create of the echo server: "
            f"{echo_cpu / len(echo_latencies) * 1000:.3f} ms"
        )

    print(
        f"EstimateWait: p50 {ms(percentile(estimates, 0.5))}, "
        f"p99 {ms(percentile(estimates, 0.99))}, mean {ms(statistics.mean(estimates))}"
    )
    print(
        f"contact events: {stream_rate:.0f}/s in one StreamContactEvents stream, "
        f"{unary_rate:.0f}/s one ReportContactEvent at a time"
    )
    print(
        f"actor message: p50 {ms(percentile(actor_latencies, 0.5))}, "
        f"p99 {ms(percentile(actor_latencies, 0.99))} one at a time; "
        f"{actor_rate:.0f}/s with 1000 in flight"
    )
    print("load average after: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
