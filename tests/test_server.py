"""The gRPC server layer without Ray: errors, conversions, TLS and the token."""

import asyncio
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from ray import cloudpickle

from callsure.actors.convert import (
    callback_request_from_proto,
    callback_to_proto,
    event_to_proto,
    parse_callback_name,
    parse_cursor,
    wait_to_proto,
)
from callsure.actors.errors import status_trailer, to_rpc_error
from callsure.actors.server import check_listen_address, start_server
from callsure.actors.services import build_servicers
from callsure.engine.callbacks import Callback, CallbackMode, Event
from callsure.engine.config import load_config
from callsure.engine.exceptions import (
    ConfigError,
    InfeasibleTimeError,
    InvalidPhoneNumberError,
    NotFoundError,
    RequestIdReusedError,
    ValidationError,
)
from callsure.engine.predictor import WaitEstimate
from callsure.v1 import admin_pb2, admin_pb2_grpc, callback_pb2

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def unpack(error, message_type):
    status_bytes = status_trailer(error)[0][1]
    from google.rpc import status_pb2

    status = status_pb2.Status.FromString(status_bytes)
    for detail in status.details:
        if detail.Is(message_type.DESCRIPTOR):
            message = message_type()
            detail.Unpack(message)
            return status, message
    raise AssertionError(f"no {message_type.__name__} in {status}")


# Error mapping


def test_validation_error_invalid_argument():
    error = to_rpc_error(InvalidPhoneNumberError("phone_number", "+1", "send E.164"))
    status, bad_request = unpack(error, error_details_pb2.BadRequest)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert bad_request.field_violations[0].field == "phone_number"
    assert "'+1'" in bad_request.field_violations[0].description


def test_reused_request_id_invalid_argument():
    error = to_rpc_error(
        cloudpickle.loads(cloudpickle.dumps(RequestIdReusedError("r-1")))
    )
    _, bad_request = unpack(error, error_details_pb2.BadRequest)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request.field_violations[0].field == "request_id"
    assert "'r-1'" in bad_request.field_violations[0].description
    assert "new request id" in error.message


def test_infeasible_time_names_nearest():
    nearest = T0 + timedelta(minutes=40)
    error = to_rpc_error(InfeasibleTimeError(T0, nearest, "no agent free"))
    _, info = unpack(error, error_details_pb2.ErrorInfo)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert info.reason == "TIME_INFEASIBLE"
    assert info.metadata["nearest_feasible_time"] == nearest.isoformat()


def test_not_found_resource_info():
    error = to_rpc_error(NotFoundError("callback", "cb_1"))
    _, info = unpack(error, error_details_pb2.ResourceInfo)
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert info.resource_name == "cb_1"


def test_unexpected_error_internal_without_text():
    error = to_rpc_error(RuntimeError("secret detail"))
    assert error.code == grpc.StatusCode.INTERNAL
    assert "secret detail" not in error.message


def test_engine_errors_survive_pickling():
    original = InfeasibleTimeError(T0, None, "closed")
    copy = cloudpickle.loads(cloudpickle.dumps(original))
    assert isinstance(copy, InfeasibleTimeError)
    assert copy.requested == T0
    assert str(copy) == str(original)


# Conversions


def create_request(**fields):
    callback = callback_pb2.Callback(
        customer_id="c-1", phone_number="+14155550100", queue="billing"
    )
    for name, value in fields.items():
        setattr(callback, name, value)
    return callback_pb2.CreateCallbackRequest(callback=callback, request_id="r-1")


def test_request_converts_local_time():
    request = create_request(
        mode=callback_pb2.CALLBACK_MODE_AT_TIME,
        requested_local_time="2026-12-04T18:30",
        time_zone="Europe/Berlin",
    )
    converted = callback_request_from_proto(request)
    assert converted.mode is CallbackMode.AT_TIME
    assert converted.requested_local_time == datetime(2026, 12, 4, 18, 30)
    assert converted.time_zone == "Europe/Berlin"


def stored_callback(**changes) -> Callback:
    """A pending AT_TIME callback promised for T0 plus one hour."""
    values = {
        "callback_id": "cb_1",
        "request_id": "r-1",
        "customer_id": "c-1",
        "queue": "billing",
        "phone_number": "+14155550100",
        "mode": CallbackMode.AT_TIME,
        "entry_time": T0,
        "created_at": T0,
        "promised_time": T0 + timedelta(hours=1),
        "window_end": None,
        "not_before": T0 + timedelta(hours=1),
        "expires_at": T0 + timedelta(hours=2),
    }
    values.update(changes)
    return Callback(**values)


def test_callback_reply_times_and_shared_wait():
    entry = T0 + timedelta(microseconds=123456)
    callback = stored_callback(entry_time=entry)
    estimate = WaitEstimate(mean_s=90.5, quantiles_s={0.5: 80.0, 0.9: 170.25})
    message = callback_to_proto(callback, estimate)
    shared = callback_to_proto(callback, expected_wait=wait_to_proto(estimate))
    assert message.entry_time.ToDatetime(tzinfo=UTC) == entry
    assert message.requested_time.ToDatetime(tzinfo=UTC) == T0 + timedelta(hours=1)
    assert message.promised_window.start_time == message.requested_time
    assert not message.promised_window.HasField("end_time")
    assert shared == message


def test_callback_reply_echoes_window_request():
    callback = stored_callback(
        mode=CallbackMode.WINDOW,
        window_end=T0 + timedelta(hours=3),
        time_zone="Europe/Berlin",
        window_date="2026-12-04",
        window_period="afternoon",
    )
    message = callback_to_proto(Callback.from_row(callback.to_row()))
    assert message.time_zone == "Europe/Berlin"
    assert message.window_date == "2026-12-04"
    assert message.window_period == "afternoon"


def test_request_id_too_long_rejected():
    request = create_request()
    request.request_id = "x" * 129
    with pytest.raises(ValidationError) as raised:
        callback_request_from_proto(request)
    assert raised.value.field == "request_id"


def test_unknown_mode_rejected():
    with pytest.raises(ValidationError) as raised:
        callback_request_from_proto(create_request(mode=42))
    assert raised.value.field == "callback.mode"


def test_empty_queue_rejected():
    with pytest.raises(ValidationError) as raised:
        callback_request_from_proto(create_request(queue=" "))
    assert raised.value.field == "callback.queue"


def test_callback_name_malformed_rejected():
    for name in ("cb_1", "callbacks/", "callbacks/a/b"):
        with pytest.raises(ValidationError):
            parse_callback_name(name)


def test_cursor_malformed_rejected():
    with pytest.raises(ValidationError) as raised:
        parse_cursor("abc")
    assert raised.value.field == "after_cursor"


def test_event_carries_outcome():
    event = Event(
        seq=7,
        time=T0,
        kind="attempt.outcome",
        callback_id="cb_1",
        payload={"attempt": {"attempt_id": "cb_1/1", "outcome": "busy"}},
    )
    message = event_to_proto(event)
    assert message.cursor == "7"
    assert message.callback == "callbacks/cb_1"
    assert message.attempt_id == "cb_1/1"
    assert message.outcome == callback_pb2.CALL_OUTCOME_BUSY


# Listening, TLS and the token


def test_non_loopback_address_rejected():
    with pytest.raises(ConfigError) as raised:
        check_listen_address("0.0.0.0:50051", allow_non_loopback=False)
    assert raised.value.key == "server.grpc_address"
    check_listen_address("0.0.0.0:50051", allow_non_loopback=True)


def run_serve(grpc_address: str, folder) -> subprocess.CompletedProcess:
    """Run `callsure serve` on ``grpc_address``, for a setting it rejects."""
    return subprocess.run(
        [sys.executable, "-m", "callsure.actors.cli", "serve"],
        env={
            "CALLSURE_SERVER__GRPC_ADDRESS": grpc_address,
            "CALLSURE_STORAGE__PATH": str(folder / "x.db"),
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_non_loopback(tmp_path):
    result = run_serve("0.0.0.0:0", tmp_path)
    assert result.returncode == 2
    assert "0.0.0.0:0" in result.stderr
    assert "allow_non_loopback" in result.stderr


def test_serve_port_in_use_before_ray(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        address = f"127.0.0.1:{held.getsockname()[1]}"
        result = run_serve(address, tmp_path)
    assert result.returncode == 2
    assert address in result.stderr
    assert "another process listens on this one" in result.stderr
    assert "starting a local Ray" not in result.stderr


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    return folder / "cert.pem", folder / "key.pem"


def health_only_servicers():
    # Only the health service is called; the API servicers are built as
    # the server builds them but never reach an actor.
    actors = SimpleNamespace(coordinator=None, shards=[], pools={})
    return build_servicers(actors)


async def check_health(server_config, credentials, metadata):
    running = await start_server(server_config, health_only_servicers())
    try:
        if credentials is None:
            channel = grpc.aio.insecure_channel(running.address)
        else:
            channel = grpc.aio.secure_channel(running.address, credentials)
        async with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(), metadata=metadata, timeout=10
            )
            return reply.status
    finally:
        await running.stop(0)


def test_tls_with_token_serving(certificate):
    cert, key = certificate
    config = load_config(None).replace(
        server={
            "grpc_address": "127.0.0.1:0",
            "tls_cert_file": str(cert),
            "tls_key_file": str(key),
            "token": "s3cret",
        }
    )
    credentials = grpc.ssl_channel_credentials(cert.read_bytes())
    status = asyncio.run(
        check_health(config.server, credentials, (("authorization", "Bearer s3cret"),))
    )
    assert status == health_pb2.HealthCheckResponse.SERVING


def test_tls_health_without_token_serving(certificate):
    # Load balancers probe the health service without credentials.
    cert, key = certificate
    config = load_config(None).replace(
        server={
            "grpc_address": "127.0.0.1:0",
            "tls_cert_file": str(cert),
            "tls_key_file": str(key),
            "token": "s3cret",
        }
    )
    credentials = grpc.ssl_channel_credentials(cert.read_bytes())
    status = asyncio.run(check_health(config.server, credentials, ()))
    assert status == health_pb2.HealthCheckResponse.SERVING


async def probe_token_check(server_config) -> dict:
    """Call a server that requires a token without one, and Check with a
    wrong one; return each call's status code name, or its health status."""
    running = await start_server(server_config, health_only_servicers())
    results = {}
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            health_stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service="callsure.v1.AdminService")
            reply = await health_stub.Check(request, timeout=10)
            results["Check"] = health_pb2.HealthCheckResponse.ServingStatus.Name(
                reply.status
            )
            watch = health_stub.Watch(request, timeout=10)
            reply = await watch.read()
            watch.cancel()
            results["Watch"] = health_pb2.HealthCheckResponse.ServingStatus.Name(
                reply.status
            )
            wrong = (("authorization", "Bearer wrong"),)
            calls = {
                "Check with wrong token": health_stub.Check(
                    request, metadata=wrong, timeout=10
                ),
                "List": health_stub.List(health_pb2.HealthListRequest(), timeout=10),
                "GetRetryPolicy": admin_pb2_grpc.AdminServiceStub(
                    channel
                ).GetRetryPolicy(admin_pb2.GetRetryPolicyRequest(), timeout=10),
            }
            for name, call in calls.items():
                try:
                    await call
                    results[name] = "OK"
                except grpc.aio.AioRpcError as error:
                    results[name] = error.code().name
    finally:
        await running.stop(0)
    return results


def test_token_exempts_only_health_probes():
    config = load_config(None).replace(
        server={"grpc_address": "127.0.0.1:0", "token": "s3cret"}
    )
    results = asyncio.run(probe_token_check(config.server))
    assert results["Check"] == "SERVING"
    assert results["Watch"] == "SERVING"
    assert results["Check with wrong token"] == "UNAUTHENTICATED"
    assert results["List"] == "UNAUTHENTICATED"
    assert results["GetRetryPolicy"] == "UNAUTHENTICATED"


def test_half_tls_config_rejected(certificate):
    cert, _ = certificate
    config = load_config(None).replace(
        server={"grpc_address": "127.0.0.1:0", "tls_cert_file": str(cert)}
    )
    with pytest.raises(ConfigError) as raised:
        asyncio.run(check_health(config.server, None, ()))
    assert "tls_key_file" in str(raised.value)


def test_port_in_use_names_fix():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        address = f"127.0.0.1:{held.getsockname()[1]}"
        config = load_config(None).replace(server={"grpc_address": address})
        with pytest.raises(ConfigError) as raised:
            asyncio.run(check_health(config.server, None, ()))
    assert raised.value.key == "server.grpc_address"
    assert raised.value.value == address
    assert "another process listens on this one" in str(raised.value)


def test_foreign_address_names_fix():
    # 192.0.2.1 (TEST-NET-1) is assigned to no interface of this machine.
    config = load_config(None).replace(
        server={"grpc_address": "192.0.2.1:0", "allow_non_loopback": True}
    )
    with pytest.raises(ConfigError) as raised:
        asyncio.run(check_health(config.server, None, ()))
    assert "an address of one of this machine's interfaces" in str(raised.value)


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("server.token", "<hidden>", "a token"),
        ValidationError("callback.queue", " ", "send a queue name"),
        RequestIdReusedError("r-1"),
        NotFoundError("callback", "cb_1"),
        InfeasibleTimeError(T0, T0 + timedelta(hours=1), "no agent"),
    ],
)
def test_error_pickles_with_attributes(error):
    copy = cloudpickle.loads(cloudpickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__
