import json
import shutil
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from callsure.actors.cli import cli
from callsure.actors.serve_cli import ray_address_problem


def test_help_lists_subcommands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "config" in result.output


def test_version_printed():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert "callsure, version" in result.output


def test_invalid_config_stops_with_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[log]\nlevel = "LOUD"\n')
    result = CliRunner().invoke(cli, ["--config", str(path), "config", "show"])
    assert result.exit_code == 2
    assert "log.level" in result.output
    assert "LOUD" in result.output


def test_missing_config_from_env_named(tmp_path):
    path = tmp_path / "nothere.toml"
    result = CliRunner().invoke(
        cli, ["config", "check"], env={"CALLSURE_CONFIG": str(path)}
    )
    assert result.exit_code == 2
    assert f"invalid config CALLSURE_CONFIG = '{path}'" in result.output
    assert "unset it" in result.output
    assert "--config" not in result.output


def test_missing_config_option_named(tmp_path):
    path = tmp_path / "nothere.toml"
    result = CliRunner().invoke(cli, ["--config", str(path), "config", "check"])
    assert result.exit_code == 2
    assert f"invalid config --config = '{path}'" in result.output
    assert "CALLSURE_CONFIG" not in result.output


def test_config_show_hides_token():
    result = CliRunner().invoke(
        cli, ["config", "show"], env={"CALLSURE_SERVER__TOKEN": "hunter2"}
    )
    assert result.exit_code == 0
    assert "hunter2" not in result.output
    assert json.loads(result.output)["server"]["token"] == "<secret>"


def test_json_log_format_emits_json_lines():
    code = (
        "import logging, sys; from callsure.actors.cli import main;"
        "sys.argv=['callsure','--log-format','json','config','show'];"
        "main(); logging.getLogger('callsure.test').warning('hello %s', 'x')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    line = result.stderr.strip().splitlines()[-1]
    assert json.loads(line)["message"] == "hello x"


def test_installed_command_runs():
    result = subprocess.run(
        [sys.executable, "-m", "callsure.actors.cli", "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert "Commands:" in result.stdout


def test_serve_corrupt_store_one_line(tmp_path):
    store = tmp_path / "corrupt.db"
    store.write_bytes(b"not a database " * 100)
    result = CliRunner().invoke(
        cli, ["serve"], env={"CALLSURE_STORAGE__PATH": str(store)}
    )
    assert result.exit_code == 1
    assert str(store) in result.output
    assert "not a database" in result.output
    assert "Traceback" not in result.output


def test_serve_unwritable_store_folder_one_line(tmp_path):
    # A file where the folder should be fails even for root, unlike a
    # folder without write permission.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    result = CliRunner().invoke(
        cli, ["serve"], env={"CALLSURE_STORAGE__PATH": str(blocker / "cs.db")}
    )
    assert result.exit_code == 1
    assert str(blocker) in result.output
    assert "CALLSURE_STORAGE__PATH" in result.output


def test_empty_storage_path_rejected():
    result = CliRunner().invoke(
        cli, ["config", "show"], env={"CALLSURE_STORAGE__PATH": ""}
    )
    assert result.exit_code != 0
    assert "storage.path" in result.output


def test_serve_non_loopback_ray_address_rejected(tmp_path):
    result = CliRunner().invoke(
        cli,
        ["serve"],
        env={
            "CALLSURE_RAY__NODE_IP_ADDRESS": "10.0.0.1",
            "CALLSURE_STORAGE__PATH": str(tmp_path / "cs.db"),
        },
    )
    assert result.exit_code == 2
    assert "ray.node_ip_address" in result.output
    assert "allow_non_loopback" in result.output


def test_serve_non_loopback_sip_address_rejected(tmp_path):
    result = CliRunner().invoke(
        cli,
        ["serve"],
        env={
            "CALLSURE_SIP__ENABLED": "true",
            "CALLSURE_SIP__BIND_ADDRESS": "10.0.0.1",
            "CALLSURE_STORAGE__PATH": str(tmp_path / "cs.db"),
        },
    )
    assert result.exit_code == 2
    assert "sip.bind_address" in result.output


def test_demo_checks_json_folder_first():
    # The check comes before Ray and the phones start, so this returns at once.
    result = CliRunner().invoke(
        cli, ["demo", "--quick", "--no-view", "--json", "/proc/nope/x.json"]
    )
    assert result.exit_code == 2
    assert "Invalid value for '--json'" in result.output
    assert "folder /proc/nope does not exist" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("address", ["not an address", "127.0.0.1", "host:abc"])
def test_serve_malformed_ray_address_one_line(tmp_path, address):
    result = CliRunner().invoke(
        cli,
        ["serve", "--ray-address", address],
        env={"CALLSURE_STORAGE__PATH": str(tmp_path / "cs.db")},
    )
    assert result.exit_code == 2
    assert "Invalid value for '--ray-address'" in result.output
    assert f"{address!r} is not a Ray address" in result.output
    assert "ray://HOST:PORT" in result.output
    assert "Traceback" not in result.output


def test_serve_unreachable_ray_address_one_line(tmp_path):
    # Nothing listens on port 1 of loopback, so the connection is refused.
    result = CliRunner().invoke(
        cli,
        ["serve"],
        env={
            "CALLSURE_RAY__ADDRESS": "127.0.0.1:1",
            "CALLSURE_STORAGE__PATH": str(tmp_path / "cs.db"),
        },
    )
    assert result.exit_code == 1
    assert "cannot connect to the Ray cluster at 127.0.0.1:1" in result.output
    assert "(ray.address)" in result.output


def test_serve_silent_ray_port_one_line(tmp_path):
    # A port that accepts connections and then sends nothing, unlike a Ray GCS.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        result = CliRunner().invoke(
            cli,
            ["serve", "--ray-address", address],
            env={"CALLSURE_STORAGE__PATH": str(tmp_path / "cs.db")},
        )
    assert result.exit_code == 1
    assert f"the Ray cluster at {address} (--ray-address)" in result.output
    assert "completed no gRPC handshake" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("address", ["auto", "127.0.0.1:6379", "ray://[::1]:10001"])
def test_ray_address_forms_accepted(address):
    assert ray_address_problem(address) is None


@pytest.fixture(scope="module")
def key_pairs(tmp_path_factory):
    """Two self-signed certificates with their keys: [(cert, key), ...]."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    pairs = []
    for name in ("a", "b"):
        cert, key = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes"]
            + ["-days", "1", "-subj", "/CN=localhost"]
            + ["-keyout", str(key), "-out", str(cert)],
            check=True,
            capture_output=True,
        )
        pairs.append((cert, key))
    return pairs


def tls_env(tmp_path, cert, key):
    return {
        "CALLSURE_SERVER__TLS_CERT_FILE": str(cert),
        "CALLSURE_SERVER__TLS_KEY_FILE": str(key),
        "CALLSURE_STORAGE__PATH": str(tmp_path / "cs.db"),
    }


def test_config_check_reports_ok(tmp_path, key_pairs):
    cert, key = key_pairs[0]
    path = tmp_path / "callsure.toml"
    path.write_text(f'[server]\ntls_cert_file = "{cert}"\ntls_key_file = "{key}"\n')
    result = CliRunner().invoke(
        cli,
        ["config", "check", "--config", str(path)],
        env={"CALLSURE_STORAGE__PATH": str(tmp_path / "new" / "cs.db")},
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("configuration OK: ")
    assert f"settings from {path}" in result.output
    # A check starts nothing and creates no folder.
    assert not (tmp_path / "new").exists()


def test_config_check_invalid_value_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[server]\ngrpc_address = "0.0.0.0:50051"\n')
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert "server.grpc_address" in result.output
    assert "allow_non_loopback" in result.output


def test_config_help_lists_check():
    result = CliRunner().invoke(cli, ["config", "--help"])
    assert result.exit_code == 0
    assert "check" in result.output


def bad_tls_cases(key_pairs, folder):
    (cert_a, key_a), (cert_b, key_b) = key_pairs
    garbage = folder / "garbage.pem"
    garbage.write_text("not a key\n")
    missing = folder / "missing.pem"
    return {
        "garbage key": (cert_a, garbage, "tls_key_file", "unencrypted PEM private"),
        "other key": (cert_a, key_b, "tls_key_file", "belongs to another"),
        "missing key": (cert_a, missing, "tls_key_file", "No such file"),
        "cert only": (cert_a, "", "tls_key_file", "set both"),
        "key only": ("", key_a, "tls_cert_file", "set both"),
        "key as cert": (key_a, key_a, "tls_cert_file", "PEM certificate chain"),
    }


@pytest.mark.parametrize(
    "case",
    ["garbage key", "other key", "missing key", "cert only", "key only", "key as cert"],
)
def test_serve_bad_tls_stops_before_ray(tmp_path, key_pairs, case):
    cert, key, setting, message = bad_tls_cases(key_pairs, tmp_path)[case]
    result = CliRunner().invoke(cli, ["serve"], env=tls_env(tmp_path, cert, key))
    assert result.exit_code == 2
    assert f"invalid config server.{setting} = " in result.output
    assert message in result.output
    assert "grpc_address" not in result.output
    # The TLS check comes before the store check, which creates the
    # store's lock file, and before Ray starts.
    assert not (tmp_path / "cs.db.lock").exists()


def test_config_check_bad_tls_one_line(tmp_path, key_pairs):
    (cert, _), (_, other_key) = key_pairs
    result = CliRunner().invoke(
        cli, ["config", "check"], env=tls_env(tmp_path, cert, other_key)
    )
    assert result.exit_code == 2
    assert "server.tls_key_file" in result.output
    assert "belongs to another certificate" in result.output


BAD_SCENARIO = """\
version: 1
start: greeting
nodes:
  greeting:
    type: play
    prompts: [welcome]
    next: nowhere
"""


def sip_env(tmp_path, **settings):
    env = {
        "CALLSURE_SIP__ENABLED": "true",
        "CALLSURE_SERVER__GRPC_ADDRESS": "127.0.0.1:0",
        "CALLSURE_STORAGE__PATH": str(tmp_path / "cs.db"),
        "CALLSURE_RAY__TEMP_DIR": str(tmp_path / "ray"),
    }
    env.update(
        {f"CALLSURE_SIP__{key.upper()}": value for key, value in settings.items()}
    )
    return env


def sip_cases(tmp_path):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(BAD_SCENARIO)
    return {
        "scenario": (
            {"scenario": str(scenario)},
            "sip.scenario",
            "nodes.greeting.next: unknown node 'nowhere'",
        ),
        "codec": (
            {"codecs": "PCMU/8000,bogus"},
            "sip.codecs = 'bogus'",
            "PCMU/8000, PCMA/8000",
        ),
        "missing scenario": (
            {"scenario": str(tmp_path / "missing.yaml")},
            "sip.scenario",
            "No such file",
        ),
    }


@pytest.mark.parametrize("case", ["scenario", "codec", "missing scenario"])
def test_config_check_bad_sip_one_line(tmp_path, case):
    settings, key, message = sip_cases(tmp_path)[case]
    result = CliRunner().invoke(
        cli, ["config", "check"], env=sip_env(tmp_path, **settings)
    )
    assert result.exit_code == 2
    assert f"invalid config {key}" in result.output
    assert message in result.output
    assert "configuration OK" not in result.output


@pytest.mark.parametrize("case", ["scenario", "codec"])
def test_serve_bad_sip_stops_before_ray(tmp_path, case):
    settings, key, message = sip_cases(tmp_path)[case]
    result = CliRunner().invoke(cli, ["serve"], env=sip_env(tmp_path, **settings))
    assert result.exit_code == 2
    assert f"invalid config {key}" in result.output
    assert message in result.output
    assert not (tmp_path / "ray").exists()
    assert not (tmp_path / "cs.db.lock").exists()


def test_config_check_sip_codecs_any_case(tmp_path):
    result = CliRunner().invoke(
        cli, ["config", "check"], env=sip_env(tmp_path, codecs="pcma/8000,PCMU/8000")
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("configuration OK: ")


def test_config_check_sip_disabled_skips_scenario(tmp_path):
    env = sip_env(tmp_path, scenario=str(tmp_path / "missing.yaml"))
    env["CALLSURE_SIP__ENABLED"] = "false"
    result = CliRunner().invoke(cli, ["config", "check"], env=env)
    assert result.exit_code == 0, result.output
