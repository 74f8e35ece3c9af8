import pytest

from callsure.engine.config import load_config, render_defaults
from callsure.engine.exceptions import ConfigError


def test_defaults_load_without_file():
    config = load_config(env={})
    assert config.server.grpc_address == "127.0.0.1:50051"
    assert config.storage.path == "./callsure.db"


def test_file_overrides_default(tmp_path):
    path = tmp_path / "callsure.toml"
    path.write_text('[server]\ngrpc_address = "127.0.0.1:6000"\n')
    config = load_config(path, env={})
    assert config.server.grpc_address == "127.0.0.1:6000"


def test_environment_overrides_file(tmp_path):
    path = tmp_path / "callsure.toml"
    path.write_text('[log]\nlevel = "DEBUG"\n')
    config = load_config(path, env={"CALLSURE_LOG__LEVEL": "ERROR"})
    assert config.log.level == "ERROR"


def test_invalid_value_names_key_and_value(tmp_path):
    path = tmp_path / "callsure.toml"
    path.write_text('[server]\ngrpc_address = "localhost"\n')
    with pytest.raises(
        ConfigError, match=r"server\.grpc_address = 'localhost'"
    ) as info:
        load_config(path, env={})
    assert "HOST:PORT" in info.value.expected


def test_unknown_key_lists_known_keys(tmp_path):
    path = tmp_path / "callsure.toml"
    path.write_text("[storage]\npth = 'x.db'\n")
    with pytest.raises(ConfigError, match=r"storage\.pth") as info:
        load_config(path, env={})
    assert "path" in info.value.expected


def test_unknown_section_rejected(tmp_path):
    path = tmp_path / "callsure.toml"
    path.write_text("[nonsense]\nx = 1\n")
    with pytest.raises(ConfigError, match="nonsense"):
        load_config(path, env={})


def test_wrong_type_rejected(tmp_path):
    path = tmp_path / "callsure.toml"
    path.write_text("[ray]\nnum_cpus = 'two'\n")
    with pytest.raises(ConfigError, match=r"ray\.num_cpus"):
        load_config(path, env={})


def test_bad_environment_value_rejected():
    with pytest.raises(ConfigError, match=r"ray\.num_cpus"):
        load_config(env={"CALLSURE_RAY__NUM_CPUS": "many"})


def test_unknown_environment_key_rejected():
    with pytest.raises(ConfigError, match="CALLSURE_SERVER__GRPC_ADRESS"):
        load_config(env={"CALLSURE_SERVER__GRPC_ADRESS": "127.0.0.1:1"})


def test_malformed_toml_rejected(tmp_path):
    path = tmp_path / "callsure.toml"
    path.write_text("[server\n")
    with pytest.raises(ConfigError, match="valid TOML"):
        load_config(path, env={})


def test_missing_file_rejected(tmp_path):
    with pytest.raises(ConfigError, match="an existing TOML file"):
        load_config(tmp_path / "absent.toml", env={})


def test_secret_hidden_in_dict():
    config = load_config(env={"CALLSURE_SERVER__TOKEN": "s3cret-token"})
    assert config.server.token == "s3cret-token"
    shown = config.as_dict(reveal_secrets=False)
    assert shown["server"]["token"] == "<secret>"


def test_secret_never_in_error():
    config = load_config(env={})
    with pytest.raises(ConfigError) as info:
        config.replace(server={"token": 12345})
    assert "12345" not in str(info.value)


def test_rendered_defaults_load_back(tmp_path):
    path = tmp_path / "defaults.toml"
    path.write_text(render_defaults())
    assert load_config(path, env={}).as_dict() == load_config(env={}).as_dict()


def test_non_utf8_file_rejected(tmp_path):
    path = tmp_path / "binary.toml"
    path.write_bytes(b'[log]\nlevel = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match="valid UTF-8 TOML") as caught:
        load_config(path, env={})
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("zone", ["Mars/Base", "../etc/passwd", ""])
def test_unknown_prediction_zone_rejected(zone):
    with pytest.raises(ConfigError, match="IANA time zone") as caught:
        load_config(env={"CALLSURE_PREDICTION__ZONE": zone})
    assert "prediction.zone" in str(caught.value)


def test_empty_storage_path_rejected():
    with pytest.raises(ConfigError, match="storage.path"):
        load_config(env={"CALLSURE_STORAGE__PATH": "  "})


def test_packet_length_other_than_20_or_40_rejected(tmp_path):
    path = tmp_path / "callsure.toml"
    path.write_text("[sip]\npacket_ms = 30\n")
    with pytest.raises(ConfigError, match=r"sip\.packet_ms = 30") as info:
        load_config(path, env={})
    assert "20 or 40" in info.value.expected
