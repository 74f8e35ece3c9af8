"""The public API definitions: lint, generated stubs and design rules."""

import shutil
import subprocess
from pathlib import Path

import pytest

from callsure.v1 import (
    admin_pb2,
    agent_pb2,
    callback_pb2,
    contact_pb2,
    event_pb2,
    prediction_pb2,
)

PROTO_ROOT = Path(__file__).resolve().parent.parent / "proto"
MODULES = (admin_pb2, agent_pb2, callback_pb2, contact_pb2, event_pb2, prediction_pb2)


def test_buf_lint_clean():
    buf = shutil.which("buf")
    if buf is None:
        pytest.skip("buf not installed; install with `npm install -g @bufbuild/buf`")
    result = subprocess.run(
        [buf, "lint"], cwd=PROTO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rpc_has_own_messages():
    seen = set()
    for module in MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert method.input_type.name == f"{method.name}Request"
                assert method.output_type.name == f"{method.name}Response"
                seen.add(method.input_type.full_name)
    assert len(seen) == 22


def test_enum_zero_values_unspecified():
    for module in MODULES:
        for enum in module.DESCRIPTOR.enum_types_by_name.values():
            assert enum.values_by_number[0].name.endswith("_UNSPECIFIED"), enum.name


def test_callback_round_trips_through_bytes():
    callback = callback_pb2.Callback(
        name="callbacks/abc",
        customer_id="c-1",
        phone_number="+14155550100",
        queue="billing",
        mode=callback_pb2.CALLBACK_MODE_AT_TIME,
    )
    callback.requested_time.FromSeconds(1_800_000_000)
    callback.ivr_history.append("main:2")
    parsed = callback_pb2.Callback.FromString(callback.SerializeToString())
    assert parsed == callback
