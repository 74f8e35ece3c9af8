"""The scenario editor's server, its page's model and `callsure scenario`.

The server runs for real on a free loopback port in a thread of the test
process, and every request goes over HTTP with urllib.
"""

from __future__ import annotations

import copy
import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from callsure.actors.cli import cli
from callsure.actors.scenario_editor import EditorServer
from callsure.actors.sip.prompts import PromptLibrary
from callsure.actors.sip.scenario import DEFAULT_SCENARIO, load_scenario

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture
def surge_document():
    return yaml.safe_load(DEFAULT_SCENARIO.read_text(encoding="utf-8"))


@pytest.fixture
def scenario_file(tmp_path):
    path = tmp_path / "surge.yaml"
    shutil.copyfile(DEFAULT_SCENARIO, path)
    return path


@pytest.fixture
def editor(scenario_file):
    server = EditorServer(scenario_file, PromptLibrary(), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def request(server, method, path, body=None, token=True, host=None, raw=None):
    """Send one request; return (status, headers, body bytes)."""
    headers = {}
    if token:
        headers["X-Callsure-Token"] = server.token if token is True else token
    if host is not None:
        headers["Host"] = host
    data = raw
    if body is not None:
        data = json.dumps(body).encode("utf-8")
    if data is not None:
        headers["Content-Type"] = "application/json"
    url = f"http://127.0.0.1:{server.port}{path}"
    http_request = urllib.request.Request(
        url, data=data, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(http_request) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def request_json(server, method, path, body=None, **options):
    status, _, data = request(server, method, path, body, **options)
    return status, json.loads(data)


def test_page_and_static_files_served(editor):
    for path, kind in [
        ("/", "text/html"),
        ("/editor.js", "text/javascript"),
        ("/model.mjs", "text/javascript"),
        ("/editor.css", "text/css"),
    ]:
        status, headers, body = request(editor, "GET", path, token=False)
        assert status == 200, path
        assert headers["Content-Type"].startswith(kind), path
        assert body, path
    _, _, page = request(editor, "GET", "/", token=False)
    assert b'src="editor.js"' in page


def test_page_loads_nothing_from_other_hosts():
    for path in (REPOSITORY / "actors" / "data" / "editor").iterdir():
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), path
        assert "https://" not in text, path


def test_url_carries_token_in_fragment(editor):
    assert editor.url == f"http://127.0.0.1:{editor.port}/#token={editor.token}"
    assert len(editor.token) >= 32


def test_api_without_token_forbidden(editor):
    for method, path in [
        ("GET", "/api/scenario"),
        ("GET", "/api/prompts"),
        ("GET", "/api/prompts/welcome.wav"),
        ("POST", "/api/validate"),
        ("POST", "/api/save"),
    ]:
        status, _, _ = request(editor, method, path, token=False, raw=b"{}")
        assert status == 403, (method, path)


def test_api_with_wrong_token_forbidden(editor):
    status, body = request_json(editor, "GET", "/api/scenario", token="x" * 32)
    assert status == 403
    assert "token" in body["error"]


def test_token_in_query_not_accepted(editor):
    path = f"/api/scenario?token={editor.token}"
    status, _, _ = request(editor, "GET", path, token=False)
    assert status == 403


def test_foreign_host_header_forbidden(editor):
    for host in ("evil.example", f"evil.example:{editor.port}", "127.0.0.1:1"):
        status, body = request_json(editor, "GET", "/api/scenario", host=host)
        assert status == 403, host
        assert "Host" in body["error"], host
    status, _, _ = request(editor, "GET", "/", token=False, host="evil.example")
    assert status == 403


def test_localhost_host_header_accepted(editor):
    status, _, _ = request(
        editor, "GET", "/api/prompts", host=f"localhost:{editor.port}"
    )
    assert status == 200


def test_missing_host_header_forbidden(editor):
    connection = http.client.HTTPConnection("127.0.0.1", editor.port)
    connection.putrequest("GET", "/api/prompts", skip_host=True)
    connection.putheader("X-Callsure-Token", editor.token)
    connection.endheaders()
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status == 403


def test_other_bind_address_rejected(scenario_file):
    for host in ("0.0.0.0", "::1", "localhost", "192.0.2.1"):
        with pytest.raises(ValueError, match="127.0.0.1 only"):
            EditorServer(scenario_file, PromptLibrary(), host=host)


def test_shipped_scenario_loaded(editor, surge_document, scenario_file):
    status, body = request_json(editor, "GET", "/api/scenario")
    assert status == 200
    assert body["document"] == surge_document
    assert body["path"] == str(scenario_file)
    assert body["errors"] == []
    assert body["comment_lines"] == 3


def test_saved_file_reports_no_comments(editor, surge_document):
    request_json(editor, "POST", "/api/save", surge_document)
    _, body = request_json(editor, "GET", "/api/scenario")
    assert body["comment_lines"] == 0


def test_good_scenario_validates(editor, surge_document):
    status, body = request_json(editor, "POST", "/api/validate", surge_document)
    assert status == 200
    assert body == {"valid": True, "errors": []}


def test_broken_scenario_errors_name_node_and_field(editor, surge_document):
    document = copy.deepcopy(surge_document)
    document["nodes"]["offer"]["options"]["2"]["next"] = "nowhere"
    document["nodes"]["ask_time"]["digits"] = 0
    document["nodes"]["greeting"]["prompts"].append("no_such_prompt")
    document["start"] = "missing"

    status, body = request_json(editor, "POST", "/api/validate", document)

    assert status == 200
    assert body["valid"] is False
    found = {(error["node"], error["field"]): error for error in body["errors"]}
    assert set(found) == {
        (None, "start"),
        ("offer", "options.2.next"),
        ("ask_time", "digits"),
        ("greeting", "prompts.4"),
    }
    assert "nowhere" in found[("offer", "options.2.next")]["message"]
    assert found[("offer", "options.2.next")]["path"] == "nodes.offer.options.2.next"
    assert "no_such_prompt" in found[("greeting", "prompts.4")]["message"]


def test_unhashable_node_name_is_an_error(editor, surge_document):
    document = copy.deepcopy(surge_document)
    document["nodes"]["greeting"]["next"] = ["offer"]
    status, body = request_json(editor, "POST", "/api/validate", document)
    assert status == 200
    assert body["valid"] is False


def test_save_round_trip(editor, surge_document, scenario_file):
    document = copy.deepcopy(surge_document)
    document["nodes"]["offer"]["timeout_s"] = 12
    document["nodes"]["goodbye_only"] = {"type": "hangup", "prompts": ["goodbye"]}
    document["nodes"]["offer"]["on_failure"] = "goodbye_only"

    status, body = request_json(editor, "POST", "/api/save", document)

    assert status == 200
    assert body["saved"] == str(scenario_file)
    loaded = load_scenario(scenario_file, PromptLibrary())
    assert loaded.nodes == document["nodes"]
    assert yaml.safe_load(scenario_file.read_text(encoding="utf-8")) == document
    assert scenario_file.read_text(encoding="utf-8").startswith("# ")
    _, reloaded = request_json(editor, "GET", "/api/scenario")
    assert reloaded["document"] == document


def test_save_keeps_previous_version(editor, surge_document, scenario_file):
    original = scenario_file.read_bytes()
    document = copy.deepcopy(surge_document)
    document["queue"] = "billing"

    status, body = request_json(editor, "POST", "/api/save", document)

    backup = scenario_file.with_name("surge.yaml.bak")
    assert status == 200
    assert body["backup"] == str(backup)
    assert backup.read_bytes() == original


def test_save_leaves_no_temporary_files(editor, surge_document, scenario_file):
    request_json(editor, "POST", "/api/save", surge_document)
    request_json(editor, "POST", "/api/save", surge_document)
    names = sorted(path.name for path in scenario_file.parent.iterdir())
    assert names == ["surge.yaml", "surge.yaml.bak"]


def test_blocked_backup_named_on_save(editor, surge_document, scenario_file):
    backup = scenario_file.with_name(scenario_file.name + ".bak")
    backup.mkdir()
    before = scenario_file.read_bytes()
    status, body = request_json(editor, "POST", "/api/save", surge_document)
    assert status == 500
    assert f"failed to write {backup}: Is a directory" in body["error"]
    assert scenario_file.read_bytes() == before


def test_invalid_scenario_not_saved(editor, surge_document, scenario_file):
    before = scenario_file.read_bytes()
    document = copy.deepcopy(surge_document)
    del document["nodes"]["stay_in_queue"]

    status, body = request_json(editor, "POST", "/api/save", document)

    assert status == 422
    assert "not saved" in body["error"]
    assert {error["node"] for error in body["errors"]} == {
        "offer",
        "request_asap",
        "request_predicted",
        "request_at_time",
    }
    assert scenario_file.read_bytes() == before
    assert not scenario_file.with_name("surge.yaml.bak").exists()


def test_json_scenario_saved_as_json(tmp_path, surge_document):
    path = tmp_path / "ivr.json"
    path.write_text(json.dumps(surge_document), encoding="utf-8")
    server = EditorServer(path, PromptLibrary())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status, _ = request_json(server, "POST", "/api/save", surge_document)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert status == 200
    assert json.loads(path.read_text(encoding="utf-8")) == surge_document
    assert load_scenario(path).nodes == surge_document["nodes"]


def test_missing_file_created_valid(tmp_path):
    path = tmp_path / "new.yaml"
    server = EditorServer(path, PromptLibrary())
    server.server_close()
    assert load_scenario(path, PromptLibrary()).start == "start"


def test_unparsable_file_rejected_at_start(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("nodes: [unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid YAML"):
        EditorServer(path, PromptLibrary())


@pytest.mark.parametrize("text", ["", "\n# only a comment\n"], ids=["empty", "comment"])
def test_empty_file_rejected_at_start(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="empty.yaml is empty: delete it"):
        EditorServer(path, PromptLibrary())
    assert path.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("name", ["binary.yaml", "binary.json"])
def test_binary_file_rejected_at_start(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\xff\xfe\x00\x96 not text")
    with pytest.raises(ValueError, match=f"{name}: not UTF-8 text") as caught:
        EditorServer(path, PromptLibrary())
    assert "save it as UTF-8" in str(caught.value)


def test_prompt_list_served(editor):
    status, body = request_json(editor, "GET", "/api/prompts")
    assert status == 200
    assert body["prompts"] == sorted(PromptLibrary().names())
    assert "welcome" in body["prompts"]


def test_prompt_wav_served(editor):
    status, headers, data = request(editor, "GET", "/api/prompts/welcome.wav")
    assert status == 200
    assert headers["Content-Type"] == "audio/wav"
    assert data == Path(PromptLibrary().path("welcome")).read_bytes()
    assert data[:4] == b"RIFF"


def test_prompt_traversal_rejected(editor):
    for path in [
        "/api/prompts/..%2F..%2Fscenarios%2Fsurge.yaml",
        "/api/prompts/..%2Fprompts%2Fwelcome.wav",
        "/api/prompts/%2Fetc%2Fpasswd",
        "/api/prompts/..",
        "/api/prompts/.hidden.wav",
        "/api/prompts/a%00b.wav",
    ]:
        status, body = request_json(editor, "GET", path)
        assert status == 400, path
        assert "invalid prompt name" in body["error"], path


def test_unknown_prompt_not_found(editor):
    status, body = request_json(editor, "GET", "/api/prompts/no_such_prompt.wav")
    assert status == 404
    assert "no_such_prompt" in body["error"]


def test_bad_json_rejected_with_reason(editor, scenario_file):
    before = scenario_file.read_bytes()
    for path in ("/api/validate", "/api/save"):
        status, body = request_json(editor, "POST", path, raw=b'{"version": 1,')
        assert status == 400, path
        assert "not valid JSON" in body["error"], path
        assert "line 1" in body["error"], path
    status, body = request_json(editor, "POST", "/api/validate", raw=b"\xff\xfe")
    assert status == 400
    assert "not UTF-8" in body["error"]
    assert scenario_file.read_bytes() == before


def test_non_mapping_document_is_an_error(editor):
    status, body = request_json(editor, "POST", "/api/validate", [1, 2])
    assert status == 200
    assert body["errors"][0]["field"] == "scenario"
    status, _ = request_json(editor, "POST", "/api/save", [1, 2])
    assert status == 422


def post_raw(server, body: bytes, length: str):
    """POST ``body`` to /api/save with the Content-Length header ``length``."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("POST", "/api/save", skip_accept_encoding=True)
    connection.putheader("X-Callsure-Token", server.token)
    connection.putheader("Content-Length", length)
    connection.endheaders(body)
    response = connection.getresponse()
    try:
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_oversized_body_rejected(editor, scenario_file):
    before = scenario_file.read_bytes()
    status, body = post_raw(editor, b"{}", str(2 << 20))
    assert status == 413
    assert "maximum of 1048576 bytes" in body["error"]
    assert scenario_file.read_bytes() == before


def test_non_ascii_content_length_rejected(editor):
    status, body = post_raw(editor, b"{}", "\xb2")
    assert status == 411
    assert "Content-Length" in body["error"]


def test_deeply_nested_body_rejected(editor, scenario_file):
    before = scenario_file.read_bytes()
    nested = b"[" * 100_000 + b"]" * 100_000
    status, body = post_raw(editor, nested, str(len(nested)))
    assert status == 400
    assert "too deeply" in body["error"]
    assert scenario_file.read_bytes() == before


def test_unknown_api_path_not_found(editor):
    status, _ = request_json(editor, "GET", "/api/nothing")
    assert status == 404
    status, _, _ = request(editor, "GET", "/etc/passwd", token=False)
    assert status == 404


def test_check_command_accepts_shipped_scenario():
    result = CliRunner().invoke(cli, ["scenario", "check", str(DEFAULT_SCENARIO)])
    assert result.exit_code == 0, result.output
    assert result.output == f"{DEFAULT_SCENARIO}: OK (10 nodes, start greeting)\n"


def test_check_command_one_line_per_file(tmp_path, surge_document):
    broken = copy.deepcopy(surge_document)
    broken["nodes"]["offer"]["options"]["1"]["next"] = "nowhere"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(broken), encoding="utf-8")
    missing = tmp_path / "missing.yaml"

    result = CliRunner().invoke(
        cli, ["scenario", "check", str(DEFAULT_SCENARIO), str(bad), str(missing)]
    )

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("OK (10 nodes, start greeting)")
    assert lines[1] == (
        f"{bad}: invalid: nodes.offer.options.1.next: unknown node 'nowhere'"
    )
    assert lines[2].startswith(f"{missing}: invalid: scenario: cannot read")


def test_check_command_binary_file_invalid(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x96\x00\xff binary")
    result = CliRunner().invoke(cli, ["scenario", "check", str(binary)])
    assert result.exit_code == 1
    assert result.output == (
        f"{binary}: invalid: scenario: cannot read {binary}: not UTF-8 text "
        "(invalid start byte at byte 0); save it as UTF-8\n"
    )


def test_check_command_uses_prompts_option(tmp_path):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    shutil.copyfile(PromptLibrary().path("welcome"), prompts / "welcome.wav")
    result = CliRunner().invoke(
        cli, ["scenario", "check", "--prompts", str(prompts), str(DEFAULT_SCENARIO)]
    )
    assert result.exit_code == 1
    assert "unknown prompt" in result.output


def test_scenario_group_listed_in_help():
    result = CliRunner().invoke(cli, ["--help"])
    assert "scenario" in result.output


def test_edit_command_rejects_folder(tmp_path):
    result = CliRunner().invoke(cli, ["scenario", "edit", str(tmp_path)])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    "stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)
def test_edit_command_serves_until_stopped(tmp_path, stop_signal):
    path = tmp_path / "new.yaml"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "callsure.actors.cli", "--log-level", "DEBUG"),
            *("scenario", "edit", str(path)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        process.stdout.readline()
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        base, _, fragment = url.partition("/#token=")
        with urllib.request.urlopen(
            urllib.request.Request(
                f"{base}/api/scenario", headers={"X-Callsure-Token": fragment}
            )
        ) as response:
            body = json.loads(response.read())
        assert body["errors"] == []
        assert body["document"]["start"] == "start"
        with pytest.raises(urllib.error.HTTPError) as rejected:
            urllib.request.urlopen(f"{base}/api/scenario?token={fragment}")
        assert rejected.value.code == 403
        # A malformed request line is quoted in the server's error record.
        port = int(base.rpartition(":")[2])
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(
                f"GET /?token={fragment} HTTP/1.1 HTTP/1.1\r\n\r\n".encode()
            )
            response = connection.makefile("rb").read()
        assert b"Error code: 400" in response
    finally:
        process.send_signal(stop_signal)
        stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr
    assert "Stopped." in stdout
    assert fragment not in stderr


def test_model_under_node():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the page model tests need Node.js 18+")
    files = sorted(
        str(path) for path in (REPOSITORY / "tests" / "editor").glob("*.test.mjs")
    )
    assert files
    result = subprocess.run(
        [node, "--test", "--test-reporter=tap", *files],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
    assert "# pass 0" not in result.stdout
