"""Benchmark of the gRPC API against a real `callsure serve` on 127.0.0.1.

The modelled system: a contact center's IVR or CTI creating callback
promises in a surge. Many calls are in flight at once (one asyncio client
with ``--concurrency`` outstanding calls, in ``--processes`` client
processes), each CreateCallback stored durably (SQLite WAL,
synchronous=FULL) before its reply. Measured:

- CreateCallback throughput and latency percentiles under that load;
- EstimateWait latency, one call at a time;
- the cost of one Ray actor message (async actor, empty method), one at a
  time and with many in flight, on a separate local Ray in this process;
- as the ceiling of this machine, the same create load against an empty
  grpc.aio CallbackService in a subprocess that echoes the request.

Customer ids and phone numbers come from a seeded generator, so runs are
repeatable. Usage::

    .venv/bin/python bench/grpc_bench.py --creates 6000 --concurrency 128
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import random
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


def run_creates(address: str, total: int, concurrency: int, processes: int):
    """Run the create load in ``processes`` processes; return merged results."""
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
    """Run the create load against an echo server in a subprocess."""
    context = multiprocessing.get_context("spawn")
    ports, stop = context.Queue(), context.Event()
    server = context.Process(target=_echo_process, args=(ports, stop))
    server.start()
    try:
        address = f"127.0.0.1:{ports.get(timeout=60)}"
        asyncio.run(create_load(address, WARMUP_CALLS, 16, 999))
        return run_creates(address, total, concurrency, processes)
    finally:
        stop.set()
        server.join(10)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--estimates", type=int, default=500)
    parser.add_argument("--actor-messages", type=int, default=1000)
    args = parser.parse_args()

    folder = private_folder()
    server = ServeProcess(folder)
    try:
        asyncio.run(create_load(server.address, WARMUP_CALLS, 16, 999))
        latencies, elapsed, errors = run_creates(
            server.address, args.creates, args.concurrency, args.processes
        )
        estimates = asyncio.run(estimate_latencies(server.address, args.estimates))
    finally:
        server.terminate()
        shutil.rmtree(folder, ignore_errors=True)
    actor_latencies, actor_rate = actor_message_cost(args.actor_messages, 1000)
    echo_latencies, echo_elapsed, _ = echo_ceiling(
        args.creates, args.concurrency, args.processes
    )

    python = platform.python_version()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {python}")
    print(
        f"CreateCallback: {len(latencies)} ok, {errors} errors in {elapsed:.2f} s "
        f"= {len(latencies) / elapsed:.0f}/s with {args.processes} x "
        f"{args.concurrency} in flight; p50 {ms(percentile(latencies, 0.5))}, "
        f"p99 {ms(percentile(latencies, 0.99))}"
    )
    print(
        f"echo CreateCallback (no engine): {len(echo_latencies) / echo_elapsed:.0f}/s"
        f"; p50 {ms(percentile(echo_latencies, 0.5))}, "
        f"p99 {ms(percentile(echo_latencies, 0.99))}"
    )
    print(
        f"EstimateWait: p50 {ms(percentile(estimates, 0.5))}, "
        f"p99 {ms(percentile(estimates, 0.99))}, mean {ms(statistics.mean(estimates))}"
    )
    print(
        f"actor message: p50 {ms(percentile(actor_latencies, 0.5))}, "
        f"p99 {ms(percentile(actor_latencies, 0.99))} one at a time; "
        f"{actor_rate:.0f}/s with 1000 in flight"
    )


if __name__ == "__main__":
    main()
