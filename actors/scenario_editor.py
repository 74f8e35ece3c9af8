"""A local web editor for IVR scenarios, served on 127.0.0.1 only.

`EditorServer` serves the page in ``actors/data/editor/`` and a small JSON
API for one scenario file:

``GET /api/scenario``
    The file's document as JSON, with its path, current errors and the
    number of comment lines that a save would drop.
``POST /api/validate``
    Check the document in the body with the gateway's own checker; every
    error carries the node and field it belongs to.
``POST /api/save``
    Write the document in the body, if it is valid. The write goes to a
    temporary file renamed over the scenario, and the previous version is
    kept as ``FILE.bak``. A ``.json`` file is written as JSON, any other as
    YAML with a short header comment. Comments inside the file are not
    kept, because the editor works on the parsed document.
``GET /api/prompts`` and ``GET /api/prompts/NAME.wav``
    The names in the prompt library, and one prompt's WAV for playback.

Any page or user on the machine can reach a loopback port, so every API
request must carry the random token of this run in the ``X-Callsure-Token``
header. The printed URL passes the token to the page in its fragment, which
browsers do not send to the server, so the token is in no request line or
log. A page of another site cannot set that header on a cross-origin
request without a CORS preflight, which this server rejects. The
Host header must name the server's own address, so that a page of another
site whose name resolves to 127.0.0.1 (DNS rebinding) is rejected as well.
"""

from __future__ import annotations

import hmac
import http
import json
import logging
import os
import re
import secrets
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from callsure.actors.sip.prompts import PromptLibrary
from callsure.actors.sip.scenario import ScenarioError, scenario_errors

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
TOKEN_HEADER = "X-Callsure-Token"
MAX_BODY_BYTES = 1 << 20
PAGE_DIRECTORY = Path(__file__).resolve().parent / "data" / "editor"
# URL path -> (file in PAGE_DIRECTORY, Content-Type).
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/editor.js": ("editor.js", "text/javascript; charset=utf-8"),
    "/model.mjs": ("model.mjs", "text/javascript; charset=utf-8"),
    "/editor.css": ("editor.css", "text/css; charset=utf-8"),
}
PROMPT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MINIMAL_SCENARIO = {
    "version": 1,
    "start": "start",
    "queue": "general",
    "nodes": {"start": {"type": "hangup", "prompts": []}},
}
YAML_HEADER = (
    "# IVR scenario, written by `callsure scenario edit`; comments are not kept.\n"
    "# Node types and fields: the docstring of callsure.actors.sip.scenario.\n"
)


class RequestError(Exception):
    """A request is rejected with an HTTP status and a message for the page."""

    def __init__(self, status: int, message: str, errors: list | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def read_document(path: Path) -> Any:
    """Parse a scenario file as the gateway does (JSON by ``.json`` suffix).

    Raises ``ValueError`` naming the file when it cannot be read or parsed.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(
            f"{path}: failed to read the file ({error.strerror})"
        ) from None
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); "
            "save it as UTF-8"
        ) from None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: not valid {_format(path)}: {error}") from None


def count_comment_lines(text: str) -> int:
    """Count the full-line YAML comments, other than the header of a save."""
    # NOTE: comments after a value on the same line are not counted, because
    # telling them from a "#" inside a quoted string needs a YAML tokenizer.
    header = set(YAML_HEADER.splitlines())
    return sum(
        1
        for line in text.splitlines()
        if line.lstrip().startswith("#") and line not in header
    )


def find_errors(document: Any, known_prompts: set[str] | None) -> list[dict]:
    """Return the scenario's errors as JSON-ready dicts for the page.

    Each has ``node`` (None for an error of the whole document), ``field``
    (the path inside the node, such as ``options.2.next``), ``path`` (the
    full path) and ``message``.
    """
    try:
        errors = scenario_errors(document, known_prompts)
    except TypeError:
        # The checker looks values up as node names, which fails for lists
        # and mappings where a name belongs.
        return [
            {
                "node": None,
                "field": "scenario",
                "path": "scenario",
                "message": "a node name is a list or mapping; expected a string",
            }
        ]
    return [_error_dict(error) for error in errors]


def _error_dict(error: ScenarioError) -> dict:
    field = error.path
    if error.node is not None:
        prefix = f"nodes.{error.node}"
        field = error.path[len(prefix) + 1 :] if error.path != prefix else ""
    return {
        "node": error.node,
        "field": field,
        "path": error.path,
        "message": error.fix,
    }


def write_scenario(path: Path, document: dict) -> Path | None:
    """Write ``document`` to ``path`` atomically; return the backup, if any.

    The previous file, when there is one, is copied to ``path.bak`` first.
    The new text goes to a temporary file in the same folder, which is then
    renamed over ``path``, so a reader sees the old or the new file whole.
    """
    if path.suffix == ".json":
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    else:
        body = yaml.safe_dump(
            document, sort_keys=False, allow_unicode=True, default_flow_style=False
        )
        text = YAML_HEADER + body
    backup = None
    mode = 0o644
    if path.exists():
        backup = path.with_name(path.name + ".bak")
        backup.write_bytes(path.read_bytes())
        mode = path.stat().st_mode & 0o777

    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return backup


class EditorServer(ThreadingHTTPServer):
    """The editor's HTTP server for one scenario file.

    Parameters
    ----------
    scenario_path : path-like
        The scenario to edit; a minimal valid scenario is written there when
        the file does not exist.
    prompts : PromptLibrary
        The prompt library that prompt names are checked against and played
        from.
    port : int
        TCP port on 127.0.0.1; 0 picks a free one (see ``port``).
    host : str
        Must be ``127.0.0.1``; any other address raises ``ValueError``.
    """

    daemon_threads = True

    def __init__(
        self,
        scenario_path: str | os.PathLike,
        prompts: PromptLibrary,
        port: int = 0,
        host: str = LOOPBACK,
    ):
        if host != LOOPBACK:
            raise ValueError(
                f"invalid bind address {host!r}: the editor listens on {LOOPBACK} only"
            )
        self.scenario_path = Path(scenario_path)
        self.prompts = prompts
        self.token = secrets.token_urlsafe(24)
        self.save_lock = threading.Lock()
        self._load_or_create()
        super().__init__((LOOPBACK, port), EditorRequestHandler)
        self.port = self.server_address[1]
        self.allowed_hosts = {f"{LOOPBACK}:{self.port}", f"localhost:{self.port}"}

    @property
    def url(self) -> str:
        """The page's address, with the token in the fragment (never sent)."""
        return f"http://{LOOPBACK}:{self.port}/#token={self.token}"

    def _load_or_create(self) -> None:
        path = self.scenario_path
        if path.is_dir():
            raise ValueError(f"{path} is a folder: give a scenario file name")
        if not path.exists():
            if not path.parent.is_dir():
                raise ValueError(
                    f"folder {path.parent} does not exist: create it first"
                )
            write_scenario(path, MINIMAL_SCENARIO)
            logger.info("created minimal scenario %s", path)
        document = read_document(path)
        if document is None:
            raise ValueError(
                f"{path} is empty: delete it, and the editor starts from a "
                "minimal scenario"
            )
        if not isinstance(document, dict):
            raise ValueError(
                f"{path}: expected a mapping with version, start and nodes, "
                f"got {type(document).__name__}"
            )

    def handle_error(self, request, client_address) -> None:
        # The default prints the traceback to stderr, outside the logging
        # module.
        logger.exception("failed to handle a request from %s", client_address[0])

    def check_token(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(
            token.encode("utf-8", "replace"), self.token.encode()
        )


class EditorRequestHandler(BaseHTTPRequestHandler):
    """Handle one request of the editor; see the module docstring."""

    server: EditorServer
    server_version = "callsure-scenario-editor"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def log_request(self, code="-", size="-") -> None:
        # The default logs the whole request line, whose query string may
        # carry the token when a client sends it there by mistake.
        # A malformed request line leaves no path.
        path = urlsplit(getattr(self, "path", "")).path
        logger.debug("%s %s: %s", self.command or "-", path or "-", code)

    def log_message(self, format: str, *args) -> None:
        # The default writes to stderr; the logging module is the project's
        # one place for records. Errors such as a malformed request line
        # may quote the token, so it is masked.
        message = (format % args).replace(self.server.token, "<token>")
        logger.debug("%s: %s", self.address_string(), message)

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            if self.headers.get("Host") not in self.server.allowed_hosts:
                raise RequestError(
                    403,
                    f"invalid Host header {self.headers.get('Host')!r}: open the "
                    f"editor at {LOOPBACK}:{self.server.port}",
                )
            if method == "GET" and url.path in PAGE_FILES:
                self._send_page_file(url.path)
                return
            if not url.path.startswith("/api/"):
                raise RequestError(404, f"not found: {url.path}")
            if not self.server.check_token(self.headers.get(TOKEN_HEADER)):
                raise RequestError(
                    403, "missing or invalid token: open the URL the command printed"
                )
            self._route(method, url.path)
        except RequestError as error:
            log = logger.error if error.status >= 500 else logger.warning
            log("rejected %s %s: %d %s", method, url.path, error.status, error.message)
            body = {"error": error.message}
            if error.errors is not None:
                body["errors"] = error.errors
            self._send_json(error.status, body)

    def _route(self, method: str, path: str) -> None:
        if method == "GET" and path == "/api/scenario":
            self._get_scenario()
        elif method == "POST" and path == "/api/validate":
            document = self._read_json()
            errors = find_errors(document, self.server.prompts.names())
            self._send_json(200, {"valid": not errors, "errors": errors})
        elif method == "POST" and path == "/api/save":
            self._save(self._read_json())
        elif method == "GET" and path == "/api/prompts":
            self._send_json(200, {"prompts": sorted(self.server.prompts.names())})
        elif method == "GET" and path.startswith("/api/prompts/"):
            self._send_prompt(path.removeprefix("/api/prompts/"))
        else:
            raise RequestError(404, f"not found: {method} {path}")

    def _get_scenario(self) -> None:
        path = self.server.scenario_path
        try:
            document = read_document(path)
        except ValueError as error:
            logger.error("failed to load scenario: %s", error)
            raise RequestError(500, str(error)) from None
        errors = find_errors(document, self.server.prompts.names())
        comment_lines = 0
        if path.suffix != ".json":
            comment_lines = count_comment_lines(path.read_text(encoding="utf-8"))
        body = {
            "path": str(path),
            "document": document,
            "errors": errors,
            "comment_lines": comment_lines,
        }
        self._send_json(200, body)

    def _save(self, document: Any) -> None:
        errors = find_errors(document, self.server.prompts.names())
        if errors:
            raise RequestError(
                422,
                f"not saved: the scenario has {len(errors)} error(s)",
                errors,
            )
        path = self.server.scenario_path
        with self.server.save_lock:
            try:
                backup = write_scenario(path, document)
            except OSError as error:
                # The file that failed may be the backup or the temporary file.
                failed = error.filename or path
                raise RequestError(
                    500,
                    f"failed to write {failed}: {error.strerror}; make the folder "
                    f"{path.parent} writable and free that name, then save again",
                ) from None
        logger.info("saved scenario %s (%d nodes)", path, len(document["nodes"]))
        self._send_json(
            200,
            {"saved": str(path), "backup": str(backup) if backup else None},
        )

    def _send_prompt(self, file_name: str) -> None:
        name = unquote(file_name).removesuffix(".wav")
        if not PROMPT_NAME.fullmatch(name) or ".." in name:
            raise RequestError(
                400,
                f"invalid prompt name {name!r}: use a name from /api/prompts",
            )
        if name not in self.server.prompts.names():
            raise RequestError(404, f"prompt {name!r} not found in the library")
        data = Path(self.server.prompts.path(name)).read_bytes()
        self._send(200, "audio/wav", data)

    def _send_page_file(self, url_path: str) -> None:
        file_name, content_type = PAGE_FILES[url_path]
        self._send(200, content_type, (PAGE_DIRECTORY / file_name).read_bytes())

    def _read_json(self) -> Any:
        length_header = self.headers.get("Content-Length")
        # isdigit alone accepts digits such as "²" that int() rejects.
        if (
            length_header is None
            or not length_header.isascii()
            or not length_header.isdigit()
        ):
            raise RequestError(
                411, "missing or invalid Content-Length: send a JSON body"
            )
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            raise RequestError(
                413,
                f"request body of {length} bytes is larger than the maximum "
                f"of {MAX_BODY_BYTES} bytes: send a smaller scenario",
            )
        body = self.rfile.read(length)
        try:
            return json.loads(body.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise RequestError(
                400, f"request body is not UTF-8: {error.reason} at byte {error.start}"
            ) from None
        except json.JSONDecodeError as error:
            raise RequestError(
                400,
                f"request body is not valid JSON: {error.msg} at line "
                f"{error.lineno} column {error.colno}",
            ) from None
        except RecursionError:
            raise RequestError(
                400,
                "request body nests arrays or objects too deeply to parse: send "
                "the scenario as the editor page does",
            ) from None

    def _send_json(self, status: int, body: dict) -> None:
        # YAML turns unquoted dates into date objects; they reach the page as
        # text, and the checker reports them where a name belongs.
        data = json.dumps(body, default=str).encode("utf-8")
        self._send(status, "application/json", data)

    def _send(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status, http.HTTPStatus(status).phrase)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; media-src 'self' blob:; frame-ancestors 'none'",
        )
        self.end_headers()
        self.wfile.write(data)


def _format(path: Path) -> str:
    return "JSON" if path.suffix == ".json" else "YAML"
