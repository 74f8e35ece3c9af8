"""``callsure client``: the request ``create`` builds, and ``events`` when
the server stops.

The create checks fail before any call, without Ray. The event stream
comes from a real ``callsure serve`` that is stopped while the client
follows it; more of the client against ``callsure serve`` is in
test_serve_process.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from serve_support import ServeProcess, private_folder

from callsure.actors.cli import cli
from callsure.actors.client_cli import build_callback, violation_adds_to
from callsure.v1 import callback_pb2

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


def test_create_help_explains_grade():
    result = CliRunner().invoke(cli, ["client", "create", "--help"])
    help_text = " ".join(result.output.split())
    assert result.exit_code == 0
    assert "The server's grade rules decide the grade" in help_text
    assert "the default rules match no attribute" in help_text
    # click may wrap the help text at the hyphen of grade-rules.
    assert "callsure client admin get grade" in help_text


@pytest.mark.parametrize("cursor", ["garbage", "-1", "1.5", "٣", str(2**63)])
def test_events_after_invalid_cursor_rejected(cursor):
    # Port 1 on loopback: the option is rejected before a call is made.
    result = CliRunner().invoke(
        cli,
        ["client", "--address", "127.0.0.1:1", "events", "--no-follow"]
        + ["--after", cursor],
    )
    assert result.exit_code == 2
    assert f"{cursor!r} is not an event cursor" in result.output
    assert "Resume with" not in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["get", "callbacks/x"],
        ["events", "--no-follow", "--after", "5"],
        ["admin", "get", "retry-policy"],
        ["campaign", "list"],
    ],
)
def test_no_server_one_line_names_address(command):
    # Nothing listens on port 1 of loopback, so the connection is refused.
    result = CliRunner().invoke(cli, ["client", "--address", "127.0.0.1:1", *command])
    lines = result.output.splitlines()
    assert result.exit_code == 1
    assert len(lines) == 1, result.output
    assert "cannot reach the callsure server at 127.0.0.1:1" in lines[0]
    assert "callsure serve" in lines[0]
    assert "--address" in lines[0]
    assert "failed to connect to all addresses" not in result.output


def run_add_targets(path):
    # Port 1 on loopback: a file rejected here is rejected before a call.
    return CliRunner().invoke(
        cli,
        ["client", "--address", "127.0.0.1:1", "campaign", "add-targets"]
        + ["campaigns/x", "--file", str(path)],
    )


def test_targets_extra_fields_named(tmp_path):
    path = tmp_path / "targets.csv"
    path.write_text(
        "customer_id,phone_number\nc-1,+14155550101\nc-2,+14155550102,en,x\n"
    )
    result = run_add_targets(path)
    assert result.exit_code == 2
    assert f"{path}:3: the row has 4 fields but the header has 2" in result.output
    assert "cannot reach" not in result.output


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ('customer_id,phone_number\nc-1,"+14155550101\nc-2,+14155550102\n', 2),
        ('customer_id,context\n"c-1",a\nc-2,"x ""y"" z"\nc-3,"open\n', 4),
        ('customer_id,phone_number,context\nc-1,+1,"a\nb"\nc-2,+1,"c\n', 4),
    ],
    ids=["first-field", "after-escaped-quotes", "after-multiline-field"],
)
def test_targets_unclosed_quote_names_line(tmp_path, content, line):
    path = tmp_path / "targets.csv"
    path.write_text(content)
    result = run_add_targets(path)
    assert result.exit_code == 2
    assert f"{path}:{line}: the quoted field that starts on this line" in result.output
    assert "phone_number ''" not in result.output


def test_targets_quoted_comma_read(tmp_path):
    path = tmp_path / "targets.csv"
    path.write_text('customer_id,phone_number,context\nc-1,+14155550101,"a,b"\n')
    result = run_add_targets(path)
    # The file is valid, so the command goes on to the (absent) server.
    assert result.exit_code == 1
    assert "cannot reach the callsure server" in result.output


def test_targets_bad_language_names_line(tmp_path):
    path = tmp_path / "targets.csv"
    path.write_text(
        "customer_id,phone_number,language\n"
        "c-1,+14155550101,pt-BR\n"
        "c-2,+14155550102,klingon-xx-123\n"
    )
    result = run_add_targets(path)
    assert result.exit_code == 2
    assert f"{path}:3: invalid language 'klingon-xx-123'" in result.output
    assert "such as en, en-US, pt-BR or zh-Hant-TW" in result.output


@pytest.mark.parametrize(
    ("summary", "field", "description", "printed"),
    [
        (
            "invalid campaign.sms_text 'Hi {name}': unknown placeholder {name}",
            "campaign.sms_text",
            "invalid value 'Hi {name}': unknown placeholder {name}",
            False,
        ),
        (
            "missing targets[0].customer_id: send a non-empty customer_id",
            "targets[0].customer_id",
            "missing value: send a non-empty customer_id",
            False,
        ),
        (
            "invalid config capacity.interval = 0: expected a positive duration",
            "capacity.interval",
            "invalid value 0: a positive duration",
            False,
        ),
        (
            "the request has 2 invalid fields",
            "targets[1].language",
            "invalid value 'x': send a BCP 47 language tag",
            True,
        ),
        (
            "invalid targets[0].phone_number '+99': not in E.164 form",
            "targets[0].phone_number",
            "invalid value '+99': not in E.164 form; the country code 99 is unknown",
            True,
        ),
    ],
    ids=["same-text", "missing", "config", "other-field", "more-text"],
)
def test_violation_printed_only_when_new(summary, field, description, printed):
    assert violation_adds_to(summary, field, description) is printed


def run_client_process(*arguments):
    # A subprocess, because gRPC's C core writes its errors to file
    # descriptor 2, which CliRunner does not capture.
    command = [sys.executable, "-m", "callsure.actors.cli", "client"]
    command += ["--address", "127.0.0.1:1", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "content", ["customer_id,phone_number\nc-1,+14155550101\n", "", "\xff\xfe"]
)
def test_ca_file_not_pem_one_line(tmp_path, content):
    path = tmp_path / "labels.csv"
    path.write_text(content, encoding="latin-1")
    result = run_client_process("--ca-file", str(path), "list")
    lines = result.stderr.splitlines()
    assert result.returncode == 1
    assert len(lines) == 1, result.stderr
    assert f"--ca-file: {path} contains no PEM certificate" in lines[0]
    assert "-----BEGIN CERTIFICATE-----" in lines[0]
    assert "TSI_" not in result.stderr


def test_ca_file_pem_certificate_used(tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "ca.pem", tmp_path / "ca-key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    result = run_client_process("--ca-file", str(cert), "list")
    # The certificate is accepted, so the client goes on to the server.
    assert result.returncode == 1
    assert "cannot reach the callsure server at 127.0.0.1:1" in result.stderr
    assert "--ca-file" not in result.stderr


@pytest.mark.slow
def test_events_stopped_server_prints_resume():
    folder = private_folder()
    server = ServeProcess(folder)
    try:
        client = [sys.executable, "-m", "callsure.actors.cli", "client"]
        client += ["--address", server.address]
        created = subprocess.run(
            [*client, "create", *CUSTOMER], capture_output=True, text=True, timeout=60
        )
        assert created.returncode == 0, created.stderr
        process = subprocess.Popen(
            [*client, "events", "--follow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        # A line on stdout shows that the client received the create event.
        printed = json.loads(process.stdout.readline())
        server.terminate()
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if server.process.poll() is None:
            server.kill()
        shutil.rmtree(folder, ignore_errors=True)
    last = ([printed] + [json.loads(line) for line in stdout.splitlines()])[-1]
    assert printed["kind"] == "callback.created"
    assert process.returncode == 1
    assert f"last cursor seen: {last['cursor']}" in stderr
    assert f"callsure client events --after {last['cursor']}" in stderr
    assert "Traceback" not in stderr
