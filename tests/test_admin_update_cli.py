"""``callsure client admin update``: every setting that ``admin get`` prints.

The output of ``admin get SETTING`` sent back unchanged with ``admin
update SETTING`` must leave the setting as it was, so a second get prints
the same JSON. The parse errors are checked without a server; the round
trips run one ``callsure serve``.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from serve_support import RestartableServer
from test_admin_read import (
    BILLING_WINDOWS,
    CAPACITY_LIMITS,
    GRADE_RULES,
    REPEAT_RULE,
    RETRY_POLICY,
)

from callsure.actors.cli import cli
from callsure.actors.client_cli import ADMIN_SETTINGS, ADMIN_UPDATES
from callsure.v1 import admin_pb2_grpc

CALL_TIMEOUT_S = 60.0
SETTINGS = list(ADMIN_SETTINGS)
# Per setting: a request unlike the default, and the --queue of its get.
STORED = {
    "callback-windows": (BILLING_WINDOWS, "billing"),
    "retry-policy": (RETRY_POLICY, ""),
    "repeat-caller-rule": (REPEAT_RULE, ""),
    "grade-rules": (GRADE_RULES, ""),
    "capacity-limits": (CAPACITY_LIMITS, ""),
}


def update_offline(setting, path):
    # Port 1 on loopback: these files are rejected before a call is made.
    return CliRunner().invoke(
        cli,
        ["client", "--address", "127.0.0.1:1", "admin", "update", setting, str(path)],
    )


def test_update_takes_every_get_setting():
    assert list(ADMIN_UPDATES) == SETTINGS
    for method, request_type, response_type in ADMIN_UPDATES.values():
        assert hasattr(admin_pb2_grpc.AdminServiceServicer, method)
        assert request_type.DESCRIPTOR.name == f"{method}Request"
        assert response_type.DESCRIPTOR.name.startswith("Get")


def test_update_retry_policy_bad_value_named(tmp_path):
    path = tmp_path / "retry.json"
    path.write_text(json.dumps({"max_attempts": "many"}))
    result = update_offline("retry-policy", path)
    assert result.exit_code == 2
    assert f"{path} is not a UpdateRetryPolicyRequest" in result.output
    assert "max_attempts" in result.output
    assert "admin get retry-policy" in result.output


def test_update_grade_rules_unknown_field_named(tmp_path):
    path = tmp_path / "grades.json"
    path.write_text(json.dumps({"vip_ids": ["crm-1"]}))
    result = update_offline("grade-rules", path)
    assert result.exit_code == 2
    assert 'no field named "vip_ids"' in result.output
    assert "grade CUSTOMER_GRADE_VIP" in result.output


def test_update_capacity_limits_invalid_json(tmp_path):
    path = tmp_path / "capacity.json"
    path.write_text('{"interval": "900s",}')
    result = update_offline("capacity-limits", path)
    assert result.exit_code == 2
    assert f"{path} is not valid JSON" in result.output


def test_update_repeat_rule_not_utf8(tmp_path):
    path = tmp_path / "repeat.json"
    path.write_bytes(b'{"thresholds": "\xe9"}')
    result = update_offline("repeat-caller-rule", path)
    assert result.exit_code == 2
    assert "repeat.json is not UTF-8 text" in result.output


def test_update_unknown_setting_lists_settings(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{}")
    result = update_offline("holidays", path)
    assert result.exit_code == 2
    for setting in SETTINGS:
        assert setting in result.output


# A real server.


@pytest.fixture(scope="module")
def served():
    served = RestartableServer(admin=admin_pb2_grpc.AdminServiceStub)
    try:
        yield served
    finally:
        served.close()


def run_client(served, *args, stdin=None):
    return CliRunner().invoke(
        cli, ["client", "--address", served.process.address, *args], input=stdin
    )


def admin_get(served, setting, queue=""):
    options = ["--queue", queue] if queue else []
    result = run_client(served, "admin", "get", setting, *options)
    assert result.exit_code == 0, result.output
    return result.output


def send_back(served, setting, queue, tmp_path):
    """Get the setting, update it with that output, and get it again."""
    before = admin_get(served, setting, queue)
    path = tmp_path / f"{setting}.json"
    path.write_text(before)
    updated = run_client(served, "admin", "update", setting, str(path))
    after = admin_get(served, setting, queue)
    return before, updated, after


# The defaults first, on the fresh store.


@pytest.mark.slow
@pytest.mark.parametrize("setting", SETTINGS)
def test_default_sent_back_unchanged(served, setting, tmp_path):
    before, updated, after = send_back(served, setting, "", tmp_path)
    assert updated.exit_code == 0, updated.output
    assert after == before


@pytest.mark.slow
@pytest.mark.parametrize("setting", SETTINGS)
def test_stored_sent_back_unchanged(served, setting, tmp_path):
    request, queue = STORED[setting]
    method = ADMIN_UPDATES[setting][0]
    getattr(served.admin, method)(request, timeout=CALL_TIMEOUT_S)
    before, updated, after = send_back(served, setting, queue, tmp_path)
    printed = json_format.Parse(before, ADMIN_UPDATES[setting][2]())
    assert updated.exit_code == 0, updated.output
    assert after == before
    assert printed != ADMIN_UPDATES[setting][2]()


@pytest.mark.slow
def test_retry_policy_from_stdin(served):
    printed = json.loads(admin_get(served, "retry-policy"))
    printed["max_attempts"] = 9
    updated = run_client(
        served, "admin", "update", "retry-policy", "-", stdin=json.dumps(printed)
    )
    after = json.loads(admin_get(served, "retry-policy"))
    assert updated.exit_code == 0, updated.output
    assert json.loads(updated.output) == {"max_attempts": 9}
    assert after == printed


@pytest.mark.slow
def test_invalid_retry_policy_names_field(served):
    updated = run_client(
        served,
        "admin",
        "update",
        "retry-policy",
        "-",
        stdin=json.dumps({"max_attempts": 0}),
    )
    after = json.loads(admin_get(served, "retry-policy"))
    assert updated.exit_code == 1
    assert "INVALID_ARGUMENT" in updated.output
    assert "invalid max_attempts 0" in updated.output
    assert after["max_attempts"] == 9


@pytest.mark.slow
def test_capacity_limits_of_one_queue_rejected(served, tmp_path):
    served.admin.UpdateCapacityLimits(CAPACITY_LIMITS, timeout=CALL_TIMEOUT_S)
    path = tmp_path / "sales.json"
    path.write_text(admin_get(served, "capacity-limits", "sales"))
    rejected = run_client(served, "admin", "update", "capacity-limits", str(path))
    after = json.loads(admin_get(served, "capacity-limits"))
    assert rejected.exit_code == 2
    assert "has no limits for billing" in rejected.output
    assert "--remove-missing" in rejected.output
    assert [limit["queue"] for limit in after["limits"]] == ["sales", "billing"]


@pytest.mark.slow
def test_capacity_limits_remove_missing(served, tmp_path):
    served.admin.UpdateCapacityLimits(CAPACITY_LIMITS, timeout=CALL_TIMEOUT_S)
    path = tmp_path / "sales.json"
    path.write_text(admin_get(served, "capacity-limits", "sales"))
    updated = run_client(
        served, "admin", "update", "capacity-limits", str(path), "--remove-missing"
    )
    after = json.loads(admin_get(served, "capacity-limits"))
    assert updated.exit_code == 0, updated.output
    assert [limit["queue"] for limit in after["limits"]] == ["sales"]
