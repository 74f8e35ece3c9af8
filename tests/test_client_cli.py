"""``callsure client``: the request ``create`` builds, and ``events`` when
the server stops.

These run without Ray: the create checks fail before any call, and the
event stream comes from a gRPC server in this process. The full client
against ``callsure serve`` is in test_serve_process.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent import futures

import click
import grpc
import pytest
from click.testing import CliRunner

from callsure.actors.cli import cli
from callsure.actors.client_cli import build_callback
from callsure.v1 import callback_pb2, event_pb2, event_pb2_grpc

CUSTOMER = ["--customer", "c-1", "--phone", "+14155550100", "--queue", "billing"]


def run_create(*options):
    # Port 1 on loopback: every case here fails before a call is made.
    return CliRunner().invoke(
        cli, ["client", "--address", "127.0.0.1:1", "create", *CUSTOMER, *options]
    )


def test_at_alone_selects_at_time():
    callback = build_callback(
        "c-1", "+14155550100", "billing", local_time="2026-12-05T10:00"
    )
    assert callback.mode == callback_pb2.CALLBACK_MODE_AT_TIME
    assert callback.requested_local_time == "2026-12-05T10:00"


def test_no_time_selects_asap():
    callback = build_callback("c-1", "+14155550100", "billing")
    assert callback.mode == callback_pb2.CALLBACK_MODE_ASAP


def test_window_options_fill_request():
    callback = build_callback(
        "c-1",
        "+14155550100",
        "billing",
        time_zone="Europe/Berlin",
        window_date="2026-12-07",
        window_period="morning",
    )
    assert callback.mode == callback_pb2.CALLBACK_MODE_WINDOW
    assert callback.window_date == "2026-12-07"
    assert callback.window_period == "morning"
    assert callback.time_zone == "Europe/Berlin"


def test_explicit_window_mode_kept():
    callback = build_callback(
        "c-1",
        "+14155550100",
        "billing",
        mode="window",
        window_date="2026-12-07",
        window_period="morning",
    )
    assert callback.mode == callback_pb2.CALLBACK_MODE_WINDOW


def test_window_needs_date_and_period():
    with pytest.raises(click.UsageError, match="--window-date.*--window-period"):
        build_callback("c-1", "+14155550100", "billing", mode="window")
    with pytest.raises(click.UsageError, match="needs both"):
        build_callback("c-1", "+14155550100", "billing", window_period="morning")


@pytest.mark.parametrize("mode", ["asap", "predicted", "window"])
def test_at_with_other_mode_rejected(mode):
    result = run_create("--mode", mode, "--at", "2026-12-05T10:00")
    assert result.exit_code == 2
    assert f"--at needs --mode at-time, not --mode {mode}" in result.output
    assert "Traceback" not in result.output


def test_window_date_with_other_mode_rejected():
    result = run_create("--mode", "asap", "--window-date", "2026-12-07")
    assert result.exit_code == 2
    assert "need --mode window, not --mode asap" in result.output


def test_at_and_window_rejected_together():
    result = run_create("--at", "2026-12-05T10:00", "--window-date", "2026-12-07")
    assert result.exit_code == 2
    assert "exclude each other" in result.output


def test_malformed_window_date_rejected():
    result = run_create("--window-date", "07.12.2026", "--window-period", "morning")
    assert result.exit_code == 2
    assert "'--window-date'" in result.output
    assert "07.12.2026" in result.output


def test_create_help_documents_at():
    result = CliRunner().invoke(cli, ["client", "create", "--help"])
    assert result.exit_code == 0
    assert "selects --mode at-time" in result.output
    assert "--window-period" in result.output


class TwoEvents(event_pb2_grpc.EventServiceServicer):
    """Send two events, then keep the stream open until it is cancelled."""

    def StreamEvents(self, request, context):
        ended = threading.Event()
        context.add_callback(ended.set)
        for cursor in ("7", "8"):
            yield event_pb2.StreamEventsResponse(
                event=event_pb2.Event(cursor=cursor, kind="callback.created")
            )
        ended.wait()


def test_events_stopped_server_prints_resume():
    servicer = TwoEvents()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    event_pb2_grpc.add_EventServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    process = subprocess.Popen(
        [sys.executable, "-m", "callsure.actors.cli", "client"]
        + ["--address", f"127.0.0.1:{port}", "events", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    # Two lines on stdout show that the client received both events.
    printed = [json.loads(process.stdout.readline()) for _ in range(2)]
    server.stop(grace=None)
    stdout, stderr = process.communicate(timeout=60)
    assert [event["cursor"] for event in printed] == ["7", "8"]
    assert process.returncode == 1
    assert "error: UNAVAILABLE" in stderr
    assert "last cursor seen: 8" in stderr
    assert "callsure client events --after 8" in stderr
    assert "Traceback" not in stderr
