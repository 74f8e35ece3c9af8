"""``callsure client``: create, get, list and cancel callbacks; follow events;
read and replace the admin settings; create, fill, run and inspect
campaigns.

Every subcommand prints the server's reply as JSON (one object per line
for ``events``), so it works in scripts. Errors print the status code and
the message, then the field violations that add to the message, and exit
with status 1; a server that cannot be reached gets one line naming its
address instead.
"""

from __future__ import annotations

import csv
import io
import json
import re
import ssl
import sys
import uuid
from datetime import datetime
from pathlib import Path

import click
import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2

from callsure.actors.auth import AUTHORIZATION_KEY, SCHEME
from callsure.actors.errors import decode_status
from callsure.engine.callbacks import check_language
from callsure.engine.campaigns import MAX_IN_FLIGHT, CampaignState
from callsure.engine.exceptions import ValidationError
from callsure.engine.phone import mask_number
from callsure.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    callback_pb2,
    callback_pb2_grpc,
    campaign_pb2,
    campaign_pb2_grpc,
    common_pb2,
    event_pb2,
    event_pb2_grpc,
)

DEFAULT_ADDRESS = "127.0.0.1:50051"
TIMEOUT_S = 30.0
MODES = {
    "asap": callback_pb2.CALLBACK_MODE_ASAP,
    "at-time": callback_pb2.CALLBACK_MODE_AT_TIME,
    "predicted": callback_pb2.CALLBACK_MODE_PREDICTED,
    "window": callback_pb2.CALLBACK_MODE_WINDOW,
}
GRADES = {
    "regular": common_pb2.CUSTOMER_GRADE_REGULAR,
    "vip": common_pb2.CUSTOMER_GRADE_VIP,
    "complaint": common_pb2.CUSTOMER_GRADE_COMPLAINT,
}
STATES = {
    name.removeprefix("CALLBACK_STATE_").lower(): number
    for name, number in callback_pb2.CallbackState.items()
    if number
}
CAMPAIGN_KINDS = {
    "complaint-follow-up": campaign_pb2.CAMPAIGN_KIND_COMPLAINT_FOLLOW_UP,
    "voc-ticket-update": campaign_pb2.CAMPAIGN_KIND_VOC_TICKET_UPDATE,
    "vip-promotion": campaign_pb2.CAMPAIGN_KIND_VIP_PROMOTION,
}
# Targets per AddCampaignTargets request, the server's maximum.
TARGETS_PER_REQUEST = 1000
# Separator of the context lines in the context column of a targets file.
CONTEXT_SEPARATOR = "|"
# Per setting of ``client admin get``: the AdminService method, its request
# type, and whether the request takes a queue.
ADMIN_SETTINGS = {
    "callback-windows": (
        "GetCallbackWindows",
        admin_pb2.GetCallbackWindowsRequest,
        True,
    ),
    "retry-policy": ("GetRetryPolicy", admin_pb2.GetRetryPolicyRequest, False),
    "repeat-caller-rule": (
        "GetRepeatCallerRule",
        admin_pb2.GetRepeatCallerRuleRequest,
        False,
    ),
    "grade-rules": ("GetGradeRules", admin_pb2.GetGradeRulesRequest, False),
    "capacity-limits": (
        "GetCapacityLimits",
        admin_pb2.GetCapacityLimitsRequest,
        True,
    ),
}
# Per setting of ``client admin update``: the AdminService method, its
# request type, and the Get response type whose output the file may be.
# Every setting that ``client admin get`` prints can be sent back.
ADMIN_UPDATES = {
    setting: (
        "Update" + get_method.removeprefix("Get"),
        getattr(admin_pb2, f"Update{get_method.removeprefix('Get')}Request"),
        getattr(admin_pb2, f"{get_method}Response"),
    )
    for setting, (get_method, _, _) in ADMIN_SETTINGS.items()
}
# Per setting: fields and values in the JSON form, for the hint of a parse
# error.
ADMIN_UPDATE_EXAMPLES = {
    "callback-windows": 'weekday WEEKDAY_MONDAY and start_local_time "09:00"',
    "retry-policy": 'outcome CALL_OUTCOME_BUSY and delays ["120s", "300s"]',
    "repeat-caller-rule": 'contact_count 4 and lookback_period "86400s"',
    "grade-rules": 'grade CUSTOMER_GRADE_VIP and complaint_window "2592000s"',
    "capacity-limits": 'interval "900s" and max_callbacks_per_interval 12',
}


class Connection:
    """A channel and the call metadata (the bearer token) of one command."""

    def __init__(self, address: str, token: str, ca_file: str | None):
        self.address = address
        if ca_file:
            credentials = grpc.ssl_channel_credentials(read_ca_file(ca_file))
            self.channel = grpc.secure_channel(address, credentials)
        else:
            self.channel = grpc.insecure_channel(address)
        self.metadata = ((AUTHORIZATION_KEY, SCHEME + token),) if token else ()


def read_ca_file(path: str) -> bytes:
    """Return the contents of ``path`` after checking that OpenSSL reads a
    PEM certificate from it.

    gRPC would accept any file here and print its TLS library's errors on
    every connection attempt instead. Raises ``click.ClickException``, one
    line naming the file.
    """
    fix = (
        "give the PEM file of the CA certificate that signed the server's "
        "certificate (it starts with -----BEGIN CERTIFICATE-----)"
    )
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise click.ClickException(
            f"--ca-file: cannot read {path} ({exc.strerror}); {fix}"
        ) from None
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=data.decode("ascii"))
    except (UnicodeDecodeError, ValueError, ssl.SSLError):
        # ValueError: an empty file.
        raise click.ClickException(
            f"--ca-file: {path} contains no PEM certificate; {fix}"
        ) from None
    return data


def _print(message, with_defaults: bool = False) -> None:
    """Print ``message`` as JSON; ``with_defaults`` also prints fields at
    their default (0, false, empty)."""
    fields = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=with_defaults,
    )
    click.echo(json.dumps(fields))


def _fail(error: grpc.RpcError, hint: str = "") -> None:
    if error.code() is grpc.StatusCode.UNAVAILABLE:
        _fail_unavailable(error, hint)
    summary = error.details() or ""
    click.echo(f"error: {error.code().name}: {summary}", err=True)
    status = decode_status(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            for violation in bad_request.field_violations:
                if violation_adds_to(summary, violation.field, violation.description):
                    click.echo(
                        f"  {violation.field}: {violation.description}", err=True
                    )
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            for key, value in sorted(info.metadata.items()):
                click.echo(f"  {key}: {value}", err=True)
    if error.code() is grpc.StatusCode.UNAUTHENTICATED:
        click.echo(
            "The server requires a token: give it with --token or in "
            "CALLSURE_CLIENT_TOKEN.",
            err=True,
        )
    if hint:
        click.echo(hint, err=True)
    sys.exit(1)


def violation_adds_to(summary: str, field: str, description: str) -> bool:
    """Return True when a field violation contains more than the error summary.

    The server's summary of a single invalid field already names the field,
    the value and the fix (``invalid campaign.sms_text 'x': use ...``), so
    its violation (``invalid value 'x': use ...``) is left out. A violation
    is printed when the summary lacks its field or any word of its
    description past the leading "invalid value" or "missing value".
    """
    if field not in summary:
        return True
    words = description.split()
    if words[:2] in (["invalid", "value"], ["missing", "value:"]):
        words = words[2:]
    return not set(words) <= set(summary.split())


def _fail_unavailable(error: grpc.RpcError, hint: str) -> None:
    """Print one line naming the server's address, instead of gRPC's
    connection details, and exit 1."""
    context = click.get_current_context(silent=True)
    connection = context.find_object(Connection) if context else None
    address = connection.address if connection else "the configured address"
    # gRPC's details end with the socket error, such as "Connection refused".
    reason = (error.details() or "unavailable").rpartition(": ")[2]
    click.echo(
        f"error: cannot reach the callsure server at {address} ({reason}): "
        "start it with `callsure serve`, or give its address with --address "
        "or CALLSURE_CLIENT_ADDRESS",
        err=True,
    )
    if hint:
        click.echo(hint, err=True)
    sys.exit(1)


def _callbacks(connection: Connection):
    return callback_pb2_grpc.CallbackServiceStub(connection.channel)


@click.group("client")
@click.option(
    "--address",
    default=DEFAULT_ADDRESS,
    show_default=True,
    envvar="CALLSURE_CLIENT_ADDRESS",
    help="HOST:PORT of the callsure gRPC server.",
)
@click.option(
    "--token",
    default="",
    envvar="CALLSURE_CLIENT_TOKEN",
    help="Bearer token the server requires; prefer CALLSURE_CLIENT_TOKEN.",
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, exists=True),
    help="PEM CA certificate; turns TLS on.",
)
@click.pass_context
def client(ctx, address, token, ca_file):
    """Call a running `callsure serve` from the shell."""
    ctx.obj = Connection(address, token, ca_file)


def choose_mode(mode: str | None, local_time: str | None, window: bool) -> str:
    """Return the callback mode of ``client create``.

    Without --mode, --at selects at-time and --window-date or
    --window-period select window, so a time given is never dropped.
    Options that contradict --mode, or each other, raise
    ``click.UsageError``.
    """
    if local_time and window:
        raise click.UsageError(
            "--at and --window-date/--window-period exclude each other: give "
            "--at for at-time, or the window options for window"
        )
    if mode is None:
        if local_time:
            return "at-time"
        return "window" if window else "asap"
    if local_time and mode != "at-time":
        raise click.UsageError(
            f"--at needs --mode at-time, not --mode {mode}: drop --at or "
            "--mode (--at alone selects at-time)"
        )
    if window and mode != "window":
        raise click.UsageError(
            f"--window-date and --window-period need --mode window, not --mode "
            f"{mode}: drop them or --mode (they alone select window)"
        )
    return mode


def build_callback(
    customer_id: str,
    phone_number: str,
    queue: str,
    mode: str | None = None,
    local_time: str | None = None,
    time_zone: str = "",
    window_date: str | None = None,
    window_period: str | None = None,
    grade: str | None = None,
    ivr: tuple[str, ...] = (),
) -> callback_pb2.Callback:
    """Build the Callback message of ``client create`` from its options."""
    window = bool(window_date or window_period)
    chosen = choose_mode(mode, local_time, window)
    if chosen == "window" and not (window_date and window_period):
        raise click.UsageError(
            "--mode window needs both --window-date YYYY-MM-DD and --window-period NAME"
        )
    callback = callback_pb2.Callback(
        customer_id=customer_id,
        phone_number=phone_number,
        queue=queue,
        mode=MODES[chosen],
        requested_local_time=local_time or "",
        time_zone=time_zone,
        window_date=window_date or "",
        window_period=window_period or "",
        ivr_history=list(ivr),
    )
    if grade:
        callback.grade_hints.grade = GRADES[grade]
    return callback


@client.command("create")
@click.option("--customer", "customer_id", required=True, help="CRM customer id.")
@click.option("--phone", "phone_number", required=True, help="E.164 number.")
@click.option("--queue", required=True, help="Queue the customer waited in.")
@click.option(
    "--mode",
    type=click.Choice(sorted(MODES)),
    help="When to call back. Default: at-time with --at, window with "
    "--window-date and --window-period, asap otherwise.",
)
@click.option(
    "--at",
    "local_time",
    help="Local time YYYY-MM-DDTHH:MM to call back; selects --mode at-time.",
)
@click.option(
    "--time-zone", default="", help="IANA zone of --at and --window-date, such as UTC."
)
@click.option(
    "--window-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Local date YYYY-MM-DD of the callback window; selects --mode window.",
)
@click.option(
    "--window-period",
    help="Name of the queue's window period on --window-date, such as morning.",
)
@click.option(
    "--grade",
    type=click.Choice(sorted(GRADES)),
    help="Grade the contact center already knows, stored as the customer's "
    "CRM attribute grade. The server's grade rules decide the grade, and use "
    "this hint only when a rule matches it, such as vip_attributes "
    "grade = vip; the default rules match no attribute, so the callback "
    "stays regular. See `callsure client admin get grade-rules`.",
)
@click.option("--ivr", multiple=True, help="IVR step such as main:2; repeatable.")
@click.option("--request-id", help="Idempotency key; a new UUID when omitted.")
@click.pass_obj
def create(
    connection,
    customer_id,
    phone_number,
    queue,
    mode,
    local_time,
    time_zone,
    window_date,
    window_period,
    grade,
    ivr,
    request_id,
):
    """Create a callback and print it with its promised window."""
    callback = build_callback(
        customer_id,
        phone_number,
        queue,
        mode=mode,
        local_time=local_time,
        time_zone=time_zone,
        window_date=window_date.date().isoformat() if window_date else None,
        window_period=window_period,
        grade=grade,
        ivr=ivr,
    )
    request = callback_pb2.CreateCallbackRequest(
        callback=callback, request_id=request_id or str(uuid.uuid4())
    )
    try:
        response = _callbacks(connection).CreateCallback(
            request, metadata=connection.metadata, timeout=TIMEOUT_S
        )
    except grpc.RpcError as error:
        _fail(error)
    _print(response)


@client.command("get")
@click.argument("name")
@click.pass_obj
def get(connection, name):
    """Print the callback NAME (callbacks/{id})."""
    try:
        response = _callbacks(connection).GetCallback(
            callback_pb2.GetCallbackRequest(name=name),
            metadata=connection.metadata,
            timeout=TIMEOUT_S,
        )
    except grpc.RpcError as error:
        _fail(error)
    _print(response.callback)


@client.command("list")
@click.option("--state", type=click.Choice(sorted(STATES)), help="Only this state.")
@click.option("--customer", "customer_id", default="", help="Only this customer.")
@click.option("--queue", default="", help="Only this queue.")
@click.option("--page-size", type=int, default=100, show_default=True)
@click.option("--all", "all_pages", is_flag=True, help="Follow next_page_token.")
@click.pass_obj
def list_callbacks(connection, state, customer_id, queue, page_size, all_pages):
    """Print callbacks, one JSON object per line."""
    request = callback_pb2.ListCallbacksRequest(
        page_size=page_size,
        state=STATES[state] if state else 0,
        customer_id=customer_id,
        queue=queue,
    )
    stub = _callbacks(connection)
    while True:
        try:
            response = stub.ListCallbacks(
                request, metadata=connection.metadata, timeout=TIMEOUT_S
            )
        except grpc.RpcError as error:
            _fail(error)
        for callback in response.callbacks:
            _print(callback)
        if not all_pages or not response.next_page_token:
            return
        request.page_token = response.next_page_token


@client.command("cancel")
@click.argument("name")
@click.option("--reason", default="", help="Kept in the event journal.")
@click.pass_obj
def cancel(connection, name, reason):
    """Cancel the callback NAME and print it."""
    try:
        response = _callbacks(connection).CancelCallback(
            callback_pb2.CancelCallbackRequest(name=name, reason=reason),
            metadata=connection.metadata,
            timeout=TIMEOUT_S,
        )
    except grpc.RpcError as error:
        _fail(error)
    _print(response.callback)


def check_cursor(ctx, param, value: str) -> str:
    """Check an event cursor given on the command line, which is an event's
    sequence number, and return it. Raises ``click.BadParameter`` otherwise."""
    if not value:
        return value
    # The server's sequence numbers are SQLite integers, below 2**63.
    if not (value.isascii() and value.isdigit()) or int(value) >= 2**63:
        raise click.BadParameter(
            f"{value!r} is not an event cursor: give the cursor field of an "
            "event printed before, a sequence number such as 42, or 0 for "
            "every event",
            param=param,
        )
    return value


@client.command("events")
@click.option(
    "--after",
    "after_cursor",
    default="",
    callback=check_cursor,
    help="Print only the events after this cursor (the cursor field of an "
    "event printed before, a sequence number).",
)
@click.option("--follow/--no-follow", default=True, show_default=True)
@click.pass_obj
def events(connection, after_cursor, follow):
    """Print journal events in order; with --follow, wait for new ones."""
    stub = event_pb2_grpc.EventServiceStub(connection.channel)
    request = event_pb2.StreamEventsRequest(after_cursor=after_cursor, follow=follow)
    # The cursor of the last event printed; the resume hint needs one.
    cursor = ""
    try:
        for response in stub.StreamEvents(request, metadata=connection.metadata):
            _print(response.event)
            cursor = response.event.cursor
    except grpc.RpcError as error:
        # The stream ends with an error when the server stops. The cursor
        # lets the user resume with no gap and no repeat.
        hint = ""
        if cursor:
            hint = (
                f"last cursor seen: {cursor}. Resume with: "
                f"callsure client events --after {cursor}"
            )
        _fail(error, hint)
    except KeyboardInterrupt:
        pass


@client.group("admin")
def admin():
    """Read or replace the operator settings of the engine."""


def _call_admin(connection, method: str, request) -> None:
    """Call AdminService ``method`` and print its reply, defaults included."""
    stub = admin_pb2_grpc.AdminServiceStub(connection.channel)
    try:
        response = getattr(stub, method)(
            request, metadata=connection.metadata, timeout=TIMEOUT_S
        )
    except grpc.RpcError as error:
        _fail(error)
    _print(response, with_defaults=True)


@admin.command("get")
@click.argument("setting", type=click.Choice(list(ADMIN_SETTINGS)))
@click.option(
    "--queue",
    default="",
    help="Queue of callback-windows or capacity-limits; empty for the default "
    "calendar or every queue's limit.",
)
@click.pass_obj
def admin_get(connection, setting, queue):
    """Print the SETTING in force, in the form its Update request takes."""
    method, request_type, takes_queue = ADMIN_SETTINGS[setting]
    if queue and not takes_queue:
        raise click.UsageError(
            f"--queue applies to callback-windows and capacity-limits, not {setting}"
        )
    request = request_type(queue=queue) if takes_queue else request_type()
    _call_admin(connection, method, request)


def parse_update(text: str, setting: str, source: str):
    """Parse the JSON of the Update request of ``setting``, read from ``source``.

    Fields that only the Get response has, such as default_calendar, are
    dropped, so the output of ``client admin get`` can be edited and sent
    back. Other unknown fields and invalid JSON raise ``click.UsageError``
    naming ``source`` and the field.
    """
    _, request_type, response_type = ADMIN_UPDATES[setting]
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.UsageError(f"{source} is not valid JSON: {error}") from None
    if not isinstance(fields, dict):
        raise click.UsageError(f"{source} must contain a JSON object")
    request_fields = set(request_type.DESCRIPTOR.fields_by_name)
    for name in set(response_type.DESCRIPTOR.fields_by_name) - request_fields:
        fields.pop(name, None)
    try:
        return json_format.ParseDict(fields, request_type())
    except json_format.ParseError as error:
        raise click.UsageError(
            f"{source} is not a {request_type.DESCRIPTOR.name}: {error}. Write "
            f"the fields and values as `callsure client admin get {setting}` "
            f"prints them, such as {ADMIN_UPDATE_EXAMPLES[setting]}"
        ) from None


@admin.command("update")
@click.argument("setting", type=click.Choice(list(ADMIN_UPDATES)))
@click.argument("file", type=click.File("rb"))
@click.option(
    "--remove-missing",
    is_flag=True,
    help="For capacity-limits: remove the limits of queues that FILE leaves "
    "out, instead of refusing the update.",
)
@click.pass_obj
def admin_update(connection, setting, file, remove_missing):
    """Replace the SETTING with the JSON object in FILE ("-" reads stdin).

    FILE contains the fields of the Update request, named as in
    proto/callsure/v1/admin.proto, such as the output of ``client admin
    get SETTING``. Each update replaces the whole setting. For
    callback-windows that is the calendar of the file's queue, or the
    default calendar when queue is empty, and date_periods sets the periods
    of single dates. For capacity-limits it is the limits of every queue:
    a FILE that leaves out a queue with a limit now, such as the output of
    ``admin get capacity-limits --queue Q``, is refused unless
    --remove-missing is given. Prints the server's reply.
    """
    method = ADMIN_UPDATES[setting][0]
    # click's binary stdin has no name.
    source = getattr(file, "name", "<stdin>")
    data = file.read()
    try:
        # utf-8-sig drops the byte order mark that some editors write.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise click.UsageError(
            f"{source} is not UTF-8 text ({error.reason} at byte "
            f"{error.start}); save it as UTF-8"
        ) from None
    request = parse_update(text, setting, source)
    if setting == "capacity-limits" and not remove_missing:
        _check_no_limit_dropped(connection, request, source)
    _call_admin(connection, method, request)


def _check_no_limit_dropped(connection, request, source: str) -> None:
    """Refuse a capacity-limits update that would remove a queue's limit
    only because the file leaves the queue out."""
    stub = admin_pb2_grpc.AdminServiceStub(connection.channel)
    try:
        current = stub.GetCapacityLimits(
            admin_pb2.GetCapacityLimitsRequest(),
            metadata=connection.metadata,
            timeout=TIMEOUT_S,
        )
    except grpc.RpcError as error:
        _fail(error)
    sent = {limit.queue for limit in request.limits}
    dropped = sorted({limit.queue for limit in current.limits} - sent)
    if dropped:
        raise click.UsageError(
            f"{source} has no limits for {', '.join(dropped)}, which have limits "
            "now, so this update would remove them. Add them to the file "
            "(`callsure client admin get capacity-limits` without --queue prints "
            "every queue), or pass --remove-missing to remove them"
        )


# Campaigns


def _campaigns(connection: Connection):
    return campaign_pb2_grpc.CampaignServiceStub(connection.channel)


def _call(connection: Connection, method: str, request):
    """Call CampaignService ``method``; on an error print it and exit 1."""
    try:
        return getattr(_campaigns(connection), method)(
            request, metadata=connection.metadata, timeout=TIMEOUT_S
        )
    except grpc.RpcError as error:
        hint = ""
        if error.code() is grpc.StatusCode.NOT_FOUND:
            hint = (
                "List the campaigns with `callsure client campaign list --all`, "
                "and the customers of one with `callsure client campaign "
                "targets NAME --all`."
            )
        _fail(error, hint)


def _aware_time(value: str, option: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise click.BadParameter(
            f"{value!r} is not a time with an offset; send one such as "
            "2026-12-07T09:00:00+01:00 or 2026-12-07T08:00:00Z",
            param_hint=option,
        )
    return when


def read_targets(path: str) -> tuple[list[campaign_pb2.CampaignTarget], list[int]]:
    """Read campaign targets from a UTF-8 CSV file with a header row ("-": stdin).

    Columns: ``customer_id`` and ``phone_number`` (required),
    ``dedicated_agent`` (an agent id), ``language`` (a BCP 47 tag), and
    ``context``, whose lines are separated by ``|``. Other named columns
    are ignored, and so is a byte order mark. Returns the targets and, for
    each, the line of the file where its row ends. Raises
    ``click.UsageError`` naming the file and line of a problem: a row with
    more fields than the header, a quoted field that is not closed, or an
    invalid language.
    """
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            data = Path(path).read_bytes()
    except OSError as exc:
        raise click.UsageError(
            f"{path}: cannot read the file ({exc.strerror}); give the path of a "
            "CSV file, or - for stdin"
        ) from None
    try:
        # utf-8-sig drops the byte order mark that spreadsheets write.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise click.UsageError(
            f"{path}: line {line} is not UTF-8 ({exc.reason} at byte "
            f"{exc.start}); save the file as UTF-8"
        ) from None
    unclosed = _unclosed_quote_line(text)
    if unclosed is not None:
        raise click.UsageError(
            f"{path}:{unclosed}: the quoted field that starts on this line is "
            'not closed; add the closing " (write "" for a quote inside a field)'
        )
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _read_rows(path, reader)
    except csv.Error as exc:
        raise click.UsageError(
            f"{path}: the row after line {reader.line_num}: {exc}; check the "
            "quoting of the row, and keep each field under 131072 characters"
        ) from None


def _read_rows(path: str, reader: csv.DictReader):
    fields = list(reader.fieldnames or ())
    missing = {"customer_id", "phone_number"} - set(fields)
    if missing:
        raise click.UsageError(
            f"{path}: the header row lacks {', '.join(sorted(missing))}; the "
            "columns are customer_id, phone_number and optionally "
            "dedicated_agent, language, context"
        )
    targets = []
    lines = []
    for row in reader:
        if None in row:
            count = len(fields) + len(row[None])
            raise click.UsageError(
                f"{path}:{reader.line_num}: the row has {count} fields but the "
                f"header has {len(fields)}; remove the extra fields, or quote a "
                'field that contains a comma ("a,b")'
            )
        language = row.get("language") or ""
        if language:
            try:
                check_language("language", language)
            except ValidationError as exc:
                raise click.UsageError(f"{path}:{reader.line_num}: {exc}") from None
        context = row.get("context") or ""
        agent = (row.get("dedicated_agent") or "").strip()
        targets.append(
            campaign_pb2.CampaignTarget(
                customer_id=row["customer_id"] or "",
                phone_number=row["phone_number"] or "",
                dedicated_agent=f"agents/{agent}" if agent else "",
                language=language,
                context=context.split(CONTEXT_SEPARATOR) if context else [],
            )
        )
        lines.append(reader.line_num)
    return targets, lines


def _unclosed_quote_line(text: str) -> int | None:
    """Return the line where a quoted field that is never closed starts.

    Follows the quoting of the csv module's default dialect: a field
    quoted from its first character ends at a lone ``"``, and ``""``
    inside it is one quote. Without this check, the csv module reads the
    rest of the file into that field.
    """
    quotes = [match.start() for match in re.finditer('"', text)]
    opened = None
    index = 0
    while index < len(quotes):
        position = quotes[index]
        if opened is None:
            if position == 0 or text[position - 1] in ",\r\n":
                opened = position
        elif position + 1 < len(text) and text[position + 1] == '"':
            index += 1
        else:
            opened = None
        index += 1
    if opened is None:
        return None
    return text.count("\n", 0, opened) + 1


def _drop_repeated_customers(path: str, targets, lines: list[int]):
    """Return ``targets`` and ``lines`` with only the first row of each
    customer, and warn about each row left out."""
    first_line: dict[str, int] = {}
    kept_targets, kept_lines = [], []
    for target, line in zip(targets, lines, strict=True):
        customer_id = target.customer_id.strip()
        if customer_id not in first_line:
            first_line[customer_id] = line
            kept_targets.append(target)
            kept_lines.append(line)
            continue
        click.echo(
            f"warning: {path}: customer {customer_id!r} on line {line} was "
            f"already on line {first_line[customer_id]}; a campaign calls a "
            "customer once, so this row is not added",
            err=True,
        )
    return kept_targets, kept_lines


def _warn_phone_changes(path: str, response, lines: list[int]) -> None:
    """Print one warning per customer already in the campaign whose row has
    another phone number; numbers are masked."""
    for change in response.phone_number_changes:
        line = lines[change.target_index]
        previous = mask_number(change.previous_phone_number)
        requested = mask_number(change.requested_phone_number)
        if change.replaced:
            outcome = f"its pending target now dials {requested} instead of {previous}"
        else:
            state = response.targets[change.target_index].state
            name = callback_pb2.CallbackState.Name(state)
            outcome = (
                f"its target is {name.removeprefix('CALLBACK_STATE_').lower()}, so "
                f"it keeps {previous} and {requested} is not used; add the "
                "customer to a new campaign to call the new number"
            )
        click.echo(
            f"warning: {path}:{line}: customer {change.customer_id!r} is already "
            f"in the campaign; {outcome}",
            err=True,
        )


def _target_line(error: grpc.RpcError, lines: list[int]) -> int | None:
    """Return the file line of the target an AddCampaignTargets error names."""
    status = decode_status(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            for violation in bad_request.field_violations:
                match = re.match(r"targets\[(\d+)\]", violation.field)
                if match and int(match.group(1)) < len(lines):
                    return lines[int(match.group(1))]
    return None


@client.group("campaign")
def campaign():
    """Create, fill, start, pause and inspect outbound campaigns."""


@campaign.command("create")
@click.option("--name", required=True, help="Name shown to operators.")
@click.option("--kind", type=click.Choice(list(CAMPAIGN_KINDS)), required=True)
@click.option("--queue", required=True, help="Agent group that takes the calls.")
@click.option(
    "--start", "start_time", required=True, help="Start time with offset (ISO 8601)."
)
@click.option("--end", "end_time", required=True, help="End time with offset.")
@click.option(
    "--max-in-flight",
    type=click.IntRange(1, MAX_IN_FLIGHT),
    default=5,
    show_default=True,
    help="Calls of the campaign in flight at once.",
)
@click.option(
    "--sms-text",
    help="SMS sent to a target whose calls all failed, with the placeholders "
    "{campaign}, {queue} and {callback_id}; an empty text sends none. Default: "
    "a text per kind, and no SMS for vip-promotion.",
)
@click.option("--request-id", help="Idempotency key; a new UUID when omitted.")
@click.pass_obj
def campaign_create(
    connection,
    name,
    kind,
    queue,
    start_time,
    end_time,
    max_in_flight,
    sms_text,
    request_id,
):
    """Create a draft campaign and print it."""
    message = campaign_pb2.Campaign(
        display_name=name,
        kind=CAMPAIGN_KINDS[kind],
        queue=queue,
        max_in_flight=max_in_flight,
        sms_text=sms_text,
    )
    message.start_time.FromDatetime(_aware_time(start_time, "--start"))
    message.end_time.FromDatetime(_aware_time(end_time, "--end"))
    request = campaign_pb2.CreateCampaignRequest(
        campaign=message, request_id=request_id or str(uuid.uuid4())
    )
    _print(_call(connection, "CreateCampaign", request))


@campaign.command("add-targets")
@click.argument("name")
@click.option(
    "--file",
    "path",
    required=True,
    help="CSV file with a header row: customer_id, phone_number, and optionally "
    "dedicated_agent, language and context (lines separated by |); - for stdin.",
)
@click.pass_obj
def campaign_add_targets(connection, name, path):
    """Add the targets of a CSV file to campaign NAME, 1000 per request.

    Prints one line per request with the targets added. A customer
    already in the campaign with another phone number gets a warning: a
    pending target takes the new number, one dialing or ended keeps the
    old one. A request that fails stops the command; the requests before
    it are stored, and running the command again adds only the customers
    still missing.
    """
    targets, lines = read_targets(path)
    if not targets:
        raise click.UsageError(f"{path} contains no targets")
    targets, lines = _drop_repeated_customers(path, targets, lines)
    stub = _campaigns(connection)
    for start in range(0, len(targets), TARGETS_PER_REQUEST):
        chunk = targets[start : start + TARGETS_PER_REQUEST]
        request = campaign_pb2.AddCampaignTargetsRequest(campaign=name, targets=chunk)
        try:
            response = stub.AddCampaignTargets(
                request, metadata=connection.metadata, timeout=TIMEOUT_S
            )
        except grpc.RpcError as error:
            chunk_lines = lines[start : start + TARGETS_PER_REQUEST]
            line = _target_line(error, chunk_lines)
            hint = (
                f"{path}: the rows on lines {chunk_lines[0]} to {chunk_lines[-1]} "
                "were not added"
            )
            if line is not None:
                hint += f"; the target named above is on line {line}"
            if start:
                fix = "fix the file and run" if line is not None else "run"
                hint += (
                    f". The rows up to line {lines[start - 1]} are stored; {fix} "
                    "the command again, which adds only the customers still missing"
                )
            _fail(error, hint + ".")
        _warn_phone_changes(path, response, lines[start : start + TARGETS_PER_REQUEST])
        click.echo(
            json.dumps(
                {
                    "first_row": start + 1,
                    "targets": len(chunk),
                    "added_count": response.added_count,
                    "target_count": response.campaign.target_count,
                }
            )
        )


@campaign.command("start")
@click.argument("name")
@click.pass_obj
def campaign_start(connection, name):
    """Start or resume campaign NAME (campaigns/{id}) and print it."""
    request = campaign_pb2.StartCampaignRequest(name=name)
    _print(_call(connection, "StartCampaign", request).campaign)


@campaign.command("pause")
@click.argument("name")
@click.pass_obj
def campaign_pause(connection, name):
    """Pause campaign NAME and print it; calls in flight go on."""
    request = campaign_pb2.PauseCampaignRequest(name=name)
    _print(_call(connection, "PauseCampaign", request).campaign)


@campaign.command("get")
@click.argument("name")
@click.pass_obj
def campaign_get(connection, name):
    """Print campaign NAME with its counts per target state and outcome."""
    request = campaign_pb2.GetCampaignRequest(name=name)
    _print(_call(connection, "GetCampaign", request))


@campaign.command("list")
@click.option(
    "--state",
    type=click.Choice([state.value for state in CampaignState]),
    help="Only this state.",
)
@click.option("--page-size", type=int, default=100, show_default=True)
@click.option("--all", "all_pages", is_flag=True, help="Follow next_page_token.")
@click.pass_obj
def campaign_list(connection, state, page_size, all_pages):
    """Print campaigns, oldest first, one JSON object per line."""
    request = campaign_pb2.ListCampaignsRequest(
        page_size=page_size,
        state=campaign_pb2.CampaignState.Value(f"CAMPAIGN_STATE_{state.upper()}")
        if state
        else 0,
    )
    while True:
        response = _call(connection, "ListCampaigns", request)
        for item in response.campaigns:
            _print(item)
        if not all_pages or not response.next_page_token:
            return
        request.page_token = response.next_page_token


@campaign.command("targets")
@click.argument("name")
@click.option("--state", type=click.Choice(sorted(STATES)), help="Only this state.")
@click.option("--page-size", type=int, default=100, show_default=True)
@click.option("--all", "all_pages", is_flag=True, help="Follow next_page_token.")
@click.pass_obj
def campaign_targets(connection, name, state, page_size, all_pages):
    """Print the targets of campaign NAME, one JSON object per line."""
    request = campaign_pb2.ListCampaignTargetsRequest(
        campaign=name, page_size=page_size, state=STATES[state] if state else 0
    )
    while True:
        response = _call(connection, "ListCampaignTargets", request)
        for target in response.targets:
            _print(target)
        if not all_pages or not response.next_page_token:
            return
        request.page_token = response.next_page_token


@campaign.command("remove-target")
@click.argument("name")
@click.argument("customer_id")
@click.option("--reason", default="opt-out", show_default=True)
@click.pass_obj
def campaign_remove_target(connection, name, customer_id, reason):
    """Remove CUSTOMER_ID from campaign NAME, such as after an opt-out."""
    request = campaign_pb2.RemoveCampaignTargetRequest(
        campaign=name, customer_id=customer_id, reason=reason
    )
    _print(_call(connection, "RemoveCampaignTarget", request).target)
