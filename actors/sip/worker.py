"""One pjsua2 endpoint process: SIP calls, media taps, prompts and bridges.

A ``CallGateway`` starts many of these, because PJSUA is a process-wide
singleton (one endpoint per process) and the pjsua2 wheel on PyPI is
compiled with ``PJSUA_MAX_CALLS = 4``. The process speaks msgpack over a
Unix socket inherited from the gateway (see ``callsure.actors.sip.wire``):
it receives commands (``dial``, ``answer``, ``play``, ``bridge``, ...) and
sends events (call states, DTMF digits, call-progress verdicts, ...).

Threading model
---------------
Every pjsua2 call happens on the main thread. The endpoint is created with
``threadCnt = 0`` and ``mainThreadOnly = True``, which removes the failure
mode where pjlib is called from a thread it does not know (which aborts
the whole process). By default the RTP sockets also join the SIP ioqueue
(``hasIoqueue = False``, no media thread): the main thread sleeps in
``select()`` on the command socket and the SIP socket, so commands and SIP
messages are handled at once, and reads every RTP socket each ``POLL_MS``.
With ``"media_thread": True`` in the spec, pjmedia's own ioqueue thread
receives RTP and the main loop pumps ``libHandleEvents`` in slices of
``PUMP_MS`` instead.

The conference bridge clock thread calls ``_Tap.onFrameReceived`` for
every tapped call every tap frame (100 ms by default), holding the GIL.
That callback only copies the frame into a ring in a numpy array, reading
the ``std::vector`` data pointer with ctypes (about 1 microsecond),
because ``bytes(frame.buf)`` walks the vector element by element (300-520
microseconds a frame) and 50 such taps fall behind real time. The main
thread runs the call-progress batch analyser once per tap frame over the
frames of all calls of the process.

Lifetime: a pjsua2 object still referenced when the library is destroyed
aborts the process, so every call, tap and player lives in registries
that ``shutdown`` empties before ``libDestroy``.

Run as ``python -m callsure.actors.sip.worker --fd N``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import logging
import os
import resource
import select
import socket
import sys
import time
import wave

import numpy as np
import pjsua2 as pj

from callsure.actors.sip.wire import MessageChannel

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 8000
FRAME_MS = 20
SAMPLES_PER_FRAME = SAMPLE_RATE_HZ * FRAME_MS // 1000
# Tap frames kept per call between two analyser ticks; a power of two so
# the write index is a mask. 16 frames of 100 ms = 1.6 s of slack.
RING_FRAMES = 16
# Default length of a tap's frame: the conference bridge hands a port
# frames of its own length, so a 100 ms tap costs one Python callback per
# 5 analyser frames. Verdicts come up to 80 ms later than with 20 ms taps.
TAP_FRAME_MS = 100
# Slice of libHandleEvents between two looks at the command socket when
# pjmedia's thread receives RTP. It bounds command latency, and
# libHandleEvents returns early on SIP events.
PUMP_MS = 20
# Without calls the loop wakes less often, because a gateway keeps dozens of
# endpoints idle: with bench/sip_capacity.py's fleet (10 processes) an idle
# endpoint cost 8.3 ms of CPU per second at 20 ms slices and 3.8 ms at
# 100 ms. With pjmedia's thread a dial sent to an idle endpoint waits up
# to this long. An INVITE wakes the loop at once either way.
IDLE_PUMP_MS = 100
# RTP sockets are read every POLL_MS when the main thread polls media (the
# default): often enough for the jitter buffer, which the conference bridge
# drains every 20 ms.
POLL_MS = 20
# Folder where each tapped call's analysed audio is written as a WAV file
# (16-bit mono, 8 kHz) when the call ends; unset, nothing is kept.
TAP_DUMP_ENV = "CALLSURE_SIP_TAP_DUMP_DIR"
# Calls requested from PJSUA before probing how many it really allows.
REQUESTED_MAX_CALLS = 512
# Conference ports besides the calls' own and their taps: players,
# recorders and the probe, so maxMediaPorts >= 2 x calls + 8 holds.
SPARE_MEDIA_PORTS = 8

# INVITE transaction timeout (timer B = 64 x T1, T1 = 500 ms), plus margin.
TIMER_B_S = 33.0
# pjlib status of "too many objects": every call slot is taken.
PJ_ETOOMANY = 70010

_memmove = ctypes.memmove
_pointer_pair = ctypes.c_void_p * 2


class _Tap(pj.AudioMediaPort):
    """Conference port that copies each received frame into a ring row."""

    def __init__(self, ring: np.ndarray, slot: int):
        super().__init__()
        self.count = 0
        self.short_frames = 0
        self._frame_bytes = ring.shape[2] * ring.itemsize
        self._mask = ring.shape[0] - 1
        self.retarget(ring, slot)

    def retarget(self, ring: np.ndarray, slot: int) -> None:
        """Write into ``slot``'s rows of ``ring`` from the next frame on."""
        base = ring.ctypes.data
        self._addresses = [
            base + index * ring.strides[0] + slot * ring.strides[1]
            for index in range(ring.shape[0])
        ]

    def onFrameReceived(self, frame):  # noqa: N802 - pjsua2 callback name
        # Runs on the conference clock thread: copy and count, nothing else.
        try:
            frame_bytes = self._frame_bytes
        except AttributeError:
            # The clock thread can call a port whose Python object is being
            # torn down (its attributes already cleared): skip the frame.
            return
        begin, end = _pointer_pair.from_address(int(frame.buf.this))
        if begin is None or end - begin < frame_bytes:
            self.short_frames += 1
            return
        count = self.count
        _memmove(self._addresses[count & self._mask], begin, frame_bytes)
        self.count = count + 1


class _Call(pj.Call):
    """A pjsua2 call that forwards its callbacks to the worker."""

    def __init__(self, worker, account, key: str, call_id=pj.PJSUA_INVALID_ID):
        super().__init__(account, call_id)
        self.worker = worker
        self.key = key

    def onCallState(self, prm):  # noqa: N802
        self.worker.guard(self.worker.on_call_state, self, prm)

    def onCallMediaState(self, prm):  # noqa: N802
        self.worker.guard(self.worker.on_call_media_state, self)

    def onDtmfDigit(self, prm):  # noqa: N802
        self.worker.emit(
            {"ev": "dtmf", "call": self.key, "digit": prm.digit, "source": "rfc4733"}
        )

    def onCallTransferStatus(self, prm):  # noqa: N802
        # Progress of a REFER this call sent. PJSUA reports 100 "Accepted"
        # when the REFER is accepted, then the status line of each NOTIFY's
        # sipfrag body. ``final`` is set when the subscription has terminated.
        self.worker.emit(
            {
                "ev": "transfer_status",
                "call": self.key,
                "code": int(prm.statusCode),
                "reason": str(prm.reason),
                "final": bool(prm.finalNotify),
            }
        )


class _Player(pj.AudioMediaPlayer):
    def __init__(self, worker, key: str):
        super().__init__()
        self.worker = worker
        self.key = key

    def onEof2(self):  # noqa: N802
        # Called from the media path. A player must not be destroyed inside
        # its own callback, so the main loop sends the event and drops it.
        self.worker.finished_players.append(self)


class _Account(pj.Account):
    def __init__(self, worker):
        super().__init__()
        self.worker = worker

    def onIncomingCall(self, prm):  # noqa: N802
        self.worker.guard(self.worker.on_incoming_call, prm)


class _CallRecord:
    """Per-call state of the worker besides the pjsua2 object."""

    __slots__ = (
        "call",
        "direction",
        "tap",
        "slot",
        "read_count",
        "ring_deadline",
        "timed_out",
        "answered",
        "verdict_sent",
        "player",
        "peer",
        "media_active",
        "media_index",
        "lost_frames",
        "provisional",
        "queued_files",
        "dumped",
    )

    def __init__(self, call: _Call, direction: str):
        self.call = call
        self.direction = direction
        self.tap: _Tap | None = None
        self.slot: int | None = None
        self.read_count = 0
        self.ring_deadline: float | None = None
        self.timed_out = False
        self.answered = False
        self.verdict_sent = False
        self.player: _Player | None = None
        self.peer: str | None = None
        self.media_active = False
        self.media_index = 0
        self.lost_frames = 0
        self.provisional = False
        self.queued_files: list[str] = []
        # Analysed frames, kept only when TAP_DUMP_ENV names a folder.
        self.dumped: list[np.ndarray] | None = None


def _status_reason(info) -> tuple[int, str]:
    try:
        return int(info.lastStatusCode), str(info.lastReason)
    except (AttributeError, ValueError):
        return 0, ""


def _sent_credentials(prm) -> bool:
    """Return whether the request that a call state event ends carried credentials.

    PJSUA answers a 401 or 407 challenge to the INVITE with the account's
    credentials and reports no call state for the challenge. A final 401,
    403 or 407 to an INVITE sent with an Authorization or
    Proxy-Authorization header means the credentials were refused.
    """
    if prm is None or prm.e.type != pj.PJSIP_EVENT_TSX_STATE:
        return False
    try:
        request = prm.e.body.tsxState.tsx.lastTx.wholeMsg
    except (AttributeError, pj.Error):
        return False
    head = request.split("\r\n\r\n", 1)[0].lower()
    return "\r\nproxy-authorization:" in head or "\r\nauthorization:" in head


def parse_x_headers(whole_message: str) -> dict[str, str]:
    """Return the ``X-`` headers of a SIP message, names as sent."""
    headers: dict[str, str] = {}
    for line in whole_message.split("\r\n")[1:]:
        if not line:
            break
        name, sep, value = line.partition(":")
        if sep and name.strip().lower().startswith("x-"):
            headers[name.strip()] = value.strip()
    return headers


class EndpointWorker:
    """The endpoint, its calls and the analyser of one process.

    Parameters
    ----------
    channel : MessageChannel
        Socket to the gateway.
    spec : dict
        Endpoint settings sent by the gateway as the first message; see
        ``CallGateway._endpoint_spec``. These keys have defaults here:
        ``tap_frame_ms`` (``TAP_FRAME_MS``), ``plc`` (False: G.711 packet
        loss concealment off, so the analyser hears what arrived),
        ``media_thread`` (False: the main thread reads RTP every
        ``poll_ms``, default ``POLL_MS``), ``tx_vad`` (False: no silence
        suppression on sent audio), ``ptime_ms`` and ``bridge_frame_ms``
        (20) and ``jb_min_prefetch_ms`` (PJSIP's default, 60).
        With the environment variable ``CALLSURE_SIP_TAP_DUMP_DIR`` set,
        each tapped call's analysed audio is written there as
        ``<call key>.wav`` when the call ends.
    """

    def __init__(self, channel: MessageChannel, spec: dict):
        self.channel = channel
        self.spec = spec
        self.name = spec["name"]
        self.calls: dict[str, _CallRecord] = {}
        self.finished_players: list[_Player] = []
        self._graveyard: list[object] = []
        self._inbound_serial = 0
        self._rejected_sources: dict[str, int] = {}
        self._probe_calls: list[_Call] = []
        self._to_reject: list[_Call] = []
        self._all_taps: list[_Tap] = []
        self._idle_taps: list[_Tap] = []
        self.max_calls = 0
        self.running = True
        self.frames_analysed = 0
        self.frames_lost = 0
        self.analyser = None
        self.ring: np.ndarray | None = None
        self.present: np.ndarray | None = None
        self.stage: np.ndarray | None = None
        self.free_slots: list[int] = []
        self.dump_dir = os.environ.get(TAP_DUMP_ENV, "")
        self.media_on_main_thread = False
        self._sip_socket: socket.socket | None = None

    # ----------------------------------------------------------------- start

    def start(self) -> None:
        """Create the endpoint, probe its call limit and announce readiness."""
        self.endpoint = pj.Endpoint()
        self.endpoint.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.uaConfig.maxCalls = REQUESTED_MAX_CALLS
        config.uaConfig.userAgent = "callsure"
        config.medConfig.maxMediaPorts = 2 * REQUESTED_MAX_CALLS + SPARE_MEDIA_PORTS
        config.medConfig.clockRate = SAMPLE_RATE_HZ
        config.medConfig.sndClockRate = SAMPLE_RATE_HZ
        # The conference bridge's clock: one tick per frame_ms for every port.
        config.medConfig.audioFramePtime = int(
            self.spec.get("bridge_frame_ms", FRAME_MS)
        )
        # RTP packet time offered in the SDP (a=ptime); the far end may
        # send what it likes, and the jitter buffer splits its packets.
        config.medConfig.ptime = int(self.spec.get("ptime_ms", FRAME_MS))
        # No echo canceller, because the far end is a phone line. Silence
        # suppression (``tx_vad``) only changes what this endpoint sends:
        # the far end's packets are all analysed, silence included.
        config.medConfig.ecTailLen = 0
        config.medConfig.noVad = not self.spec.get("tx_vad", False)
        # Minimum jitter-buffer prefetch in ms; unset, PJSIP chooses it.
        if self.spec.get("jb_min_prefetch_ms"):
            config.medConfig.jbMinPre = int(self.spec["jb_min_prefetch_ms"])
        # RTP sockets join the SIP ioqueue, which only the main thread polls
        # (see run); pjmedia's own ioqueue thread woke once per packet.
        self.media_on_main_thread = not self.spec.get("media_thread", False)
        self.poll_ms = int(self.spec.get("poll_ms", POLL_MS))
        if self.media_on_main_thread:
            config.medConfig.hasIoqueue = False
            config.medConfig.threadCnt = 0
        config.logConfig.level = int(self.spec.get("pjsip_log_level", 0))
        config.logConfig.consoleLevel = int(self.spec.get("pjsip_log_level", 0))
        self.endpoint.libInit(config)

        transport = pj.TransportConfig()
        transport.boundAddress = self.spec["bind_address"]
        transport.port = int(self.spec.get("sip_port", 0))
        self.transport_id = self.endpoint.transportCreate(
            pj.PJSIP_TRANSPORT_UDP, transport
        )
        self.sip_port = self.endpoint.transportGetInfo(self.transport_id).localName
        self._sip_socket = _find_udp_socket(self.sip_port)
        self.endpoint.libStart()
        self.endpoint.audDevManager().setNullDev()
        self._set_codec_priorities(self.spec.get("codecs", ["PCMU/8000"]))

        self.account = self._create_account(proxies=True)
        self.max_calls = self._probe_max_calls()
        configured = int(self.spec.get("max_calls", 0))
        if configured:
            self.max_calls = min(self.max_calls, configured)
        self._create_analyser(self.max_calls)
        host, _, port = self.sip_port.rpartition(":")
        self.emit(
            {
                "ev": "ready",
                "max_calls": self.max_calls,
                "sip_address": self.sip_port,
                "sip_port": int(port),
                "pid": os.getpid(),
                "analyser": self.analyser is not None,
            }
        )

    def _set_codec_priorities(self, codecs: list[str]) -> None:
        # PJSIP prefers speex/16000 by default; the gateway offers G.711
        # only, in the configured order, so the far end cannot pick a codec
        # the analyser was not tuned for.
        priorities = {
            name.lower(): len(codecs) - rank for rank, name in enumerate(codecs)
        }
        for codec in self.endpoint.codecEnum2():
            codec_id = codec.codecId
            base = codec_id.rsplit("/", 1)[0] if codec_id.count("/") > 1 else codec_id
            priority = priorities.get(base.lower(), 0)
            self.endpoint.codecSetPriority(codec_id, 128 + priority if priority else 0)
            if priority and not self.spec.get("plc", False):
                self._disable_plc(codec_id)

    def _disable_plc(self, codec_id: str) -> None:
        # PJSIP 2.15 conceals G.711 loss with WSOLA, which delays every
        # received sample by 5 ms (40 samples at 8 kHz) and fills a late
        # or lost packet with a repeat of the audio before it, fading out.
        # The delay moves the audio against the analyser's 10 ms blocks and
        # the repeats lengthen greetings, so a person near max_greeting_ms
        # was judged MACHINE (LONG_GREETING). Without concealment a missing
        # frame is silence.
        parameters = self.endpoint.codecGetParam(codec_id)
        parameters.setting.plc = False
        self.endpoint.codecSetParam(codec_id, parameters)

    def _create_account(self, proxies: bool) -> _Account:
        config = pj.AccountConfig()
        user = self.spec.get("user", "callsure")
        config.idUri = f"sip:{user}@{self.sip_port}"
        config.sipConfig.transportId = self.transport_id
        media = config.mediaConfig.transportConfig
        media.boundAddress = self.spec["bind_address"]
        media.port = int(self.spec.get("rtp_port", 0))
        media.portRange = int(self.spec.get("rtp_port_range", 0))
        if proxies and self.spec.get("outbound_proxy"):
            config.sipConfig.proxies.append(self.spec["outbound_proxy"])
        credentials = self.spec.get("credentials")
        if proxies and credentials:
            info = pj.AuthCredInfo(
                "digest",
                credentials.get("realm", "*"),
                credentials["username"],
                0,
                credentials["password"],
            )
            config.sipConfig.authCreds.append(info)
        account = _Account(self)
        account.create(config)
        return account

    def _probe_max_calls(self) -> int:
        """Count the calls PJSUA accepts, by dialing this endpoint itself.

        ``UaConfig.maxCalls`` above the compiled ``PJSUA_MAX_CALLS`` is
        clamped without notice; the clamped value is readable nowhere in
        pjsua2, so the probe makes calls until ``makeCall`` raises. The
        probe INVITEs reach this endpoint only after the loop, when every
        slot is taken, so PJSUA answers them 486 and the probe calls end.
        """
        target = f"sip:probe@{self.sip_port}"
        count = 0
        for _ in range(REQUESTED_MAX_CALLS):
            call = _Call(self, self.account, f"probe-{count}")
            parameters = pj.CallOpParam(True)
            try:
                call.makeCall(target, parameters)
            except pj.Error:
                break
            self._probe_calls.append(call)
            count += 1
        deadline = time.monotonic() + 5.0
        while self._probe_calls and time.monotonic() < deadline:
            self.endpoint.libHandleEvents(PUMP_MS)
            self._probe_calls = [c for c in self._probe_calls if c.isActive()]
        for call in self._probe_calls:
            try:
                call.hangup(pj.CallOpParam(True))
            except pj.Error:
                pass
        self._probe_calls.clear()
        self._collect()
        return count

    def _create_analyser(self, max_streams: int) -> None:
        tap_frame_ms = int(self.spec.get("tap_frame_ms", TAP_FRAME_MS))
        if tap_frame_ms % FRAME_MS:
            raise ValueError(
                f"tap_frame_ms must be a multiple of {FRAME_MS}, got {tap_frame_ms}"
            )
        self.tap_frame_ms = tap_frame_ms
        self.sub_frames = tap_frame_ms // FRAME_MS
        self.ring = np.zeros(
            (RING_FRAMES, max(max_streams, 1), SAMPLES_PER_FRAME * self.sub_frames),
            dtype=np.int16,
        )
        self.present = np.zeros(max(max_streams, 1), dtype=bool)
        self.stage = np.zeros(self.ring.shape[1:], dtype=np.int16)
        try:
            from callsure.dsp import BatchAnalyzer
        except ImportError:
            # NOTE: without callsure.dsp.BatchAnalyzer the taps still run but
            # no verdict is produced; the gateway's verdict timer then
            # treats each answered call as NOTSURE.
            logger.warning("%s: callsure.dsp.BatchAnalyzer is missing", self.name)
            self.free_slots = list(range(max_streams))
            return
        self.analyser = BatchAnalyzer(
            max_streams, sample_rate_hz=SAMPLE_RATE_HZ, frame_ms=FRAME_MS
        )

    # ------------------------------------------------------------- main loop

    def run(self) -> None:
        """Pump events and commands until ``shutdown`` or the gateway leaves."""
        # The library is destroyed whatever ends the loop, so that the
        # process exits after an error too.
        try:
            if self.media_on_main_thread:
                self._run_polling()
                return
            next_tick = time.monotonic()
            while self.running:
                self.endpoint.libHandleEvents(PUMP_MS if self.calls else IDLE_PUMP_MS)
                next_tick = self._after_events(next_tick)
        finally:
            self.shutdown()

    def _run_polling(self) -> None:
        # The thread sleeps in select() on the command socket and the SIP
        # socket, so commands and SIP messages are handled at once; RTP
        # sockets are read every poll_ms. pjmedia's UDP transport reads all
        # queued packets of a socket in one event, and the jitter buffer
        # absorbs the batches.
        watched = [self.channel.sock]
        if self._sip_socket is not None:
            watched.append(self._sip_socket)
        poll_s = self.poll_ms / 1000
        next_poll = next_tick = time.monotonic()
        while self.running:
            now = time.monotonic()
            if now >= next_poll:
                next_poll = max(next_poll + poll_s, now)
            timeout = next_poll - now if self.calls else IDLE_PUMP_MS / 1000
            select.select(watched, (), (), timeout)
            self.endpoint.libHandleEvents(0)
            next_tick = self._after_events(next_tick)

    def _after_events(self, next_tick: float) -> float:
        """Handle commands, the analyser tick and dropped objects; next tick."""
        if self._to_reject:
            self._reject_pending()
        messages = self.channel.poll()
        if messages is None:
            logger.info("%s: gateway closed the socket", self.name)
            self.running = False
            return next_tick
        for message in messages:
            self.guard(self.handle, message)
        now = time.monotonic()
        if now >= next_tick:
            self.guard(self.tick, now)
            # One tick per tap frame: every tap has delivered about one
            # frame since the last, and all are analysed as one batch.
            next_tick = now + self.tap_frame_ms / 1000
        self._finish_players()
        self._collect()
        return next_tick

    def guard(self, function, *args) -> None:
        """Run a callback body; log and report an error instead of raising.

        Exceptions must not escape into SWIG director callbacks, and the
        main loop must not die on one bad command.
        """
        try:
            function(*args)
        except Exception as error:  # noqa: BLE001 - loop must not die
            # pj.Error has an empty str(); its text is in reason and title.
            text = getattr(error, "reason", "") or str(error) or type(error).__name__
            logger.exception("%s: %s failed: %s", self.name, function.__name__, text)
            self.emit({"ev": "error", "message": f"{function.__name__}: {text}"})

    def emit(self, event: dict) -> None:
        try:
            self.channel.send(event)
        except OSError:
            self.running = False

    def handle(self, message: dict) -> None:
        operation = message.get("op")
        handler = getattr(self, f"op_{operation}", None)
        if handler is None:
            raise ValueError(f"unknown command op={operation!r}")
        handler(message)

    # -------------------------------------------------------------- commands

    def op_dial(self, message: dict) -> None:
        key = message["call"]
        call = _Call(self, self.account, key)
        parameters = pj.CallOpParam(True)
        parameters.opt.audioCount = 1
        parameters.opt.videoCount = 0
        for name, value in message.get("headers", {}).items():
            header = pj.SipHeader()
            header.hName = name
            header.hValue = value
            parameters.txOption.headers.append(header)
        record = _CallRecord(call, "outbound")
        record.peer = message.get("peer")
        ring_timeout_s = message.get("ring_timeout_s")
        if ring_timeout_s:
            record.ring_deadline = time.monotonic() + float(ring_timeout_s)
        self.calls[key] = record
        try:
            call.makeCall(message["uri"], parameters)
        except pj.Error as error:
            del self.calls[key]
            self._graveyard.append(call)
            self.emit(
                {
                    "ev": "state",
                    "call": key,
                    "state": "DISCONNECTED",
                    "code": 503,
                    "reason": f"makeCall failed: {error.reason}",
                    "local_failure": True,
                    "no_free_slot": error.status == PJ_ETOOMANY,
                }
            )

    def op_answer(self, message: dict) -> None:
        record = self.calls[message["call"]]
        parameters = pj.CallOpParam(True)
        parameters.statusCode = int(message.get("code", 200))
        record.call.answer(parameters)

    def op_hangup(self, message: dict) -> None:
        record = self.calls.get(message["call"])
        if record is None:
            return
        parameters = pj.CallOpParam(True)
        code = int(message.get("code", 0))
        if code:
            parameters.statusCode = code
        try:
            record.call.hangup(parameters)
        except pj.Error as error:
            logger.debug("%s: hangup %s: %s", self.name, message["call"], error)

    def op_play(self, message: dict) -> None:
        # One player per file, started one after another: the pjmedia
        # playlist port reads 16-bit PCM only, and the prompts are mu-law.
        record = self.calls[message["call"]]
        self._stop_player(record)
        record.queued_files = list(message["files"])
        self._play_next(record)

    def _play_next(self, record: _CallRecord) -> None:
        player = _Player(self, record.call.key)
        player.createPlayer(record.queued_files.pop(0), pj.PJMEDIA_FILE_NO_LOOP)
        player.startTransmit(record.call.getAudioMedia(-1))
        record.player = player

    def op_stop_play(self, message: dict) -> None:
        record = self.calls.get(message["call"])
        if record is not None:
            self._stop_player(record)

    def op_bridge(self, message: dict) -> None:
        first = self.calls[message["first"]]
        second = self.calls[message["second"]]
        self._stop_player(first)
        self._stop_player(second)
        first_audio = first.call.getAudioMedia(-1)
        second_audio = second.call.getAudioMedia(-1)
        first_audio.startTransmit(second_audio)
        second_audio.startTransmit(first_audio)
        self.emit({"ev": "bridged", "first": first.call.key, "second": second.call.key})

    def op_transfer(self, message: dict) -> None:
        record = self.calls[message["call"]]
        try:
            record.call.xfer(message["uri"], pj.CallOpParam(True))
        except pj.Error as error:
            logger.warning(
                "%s: REFER on %s failed: %s", self.name, message["call"], error.reason
            )
            # Reported like a failed transfer, so the flow need not wait for
            # its transfer timer.
            self.emit(
                {
                    "ev": "transfer_status",
                    "call": message["call"],
                    "code": 500,
                    "reason": f"REFER not sent: {error.reason}",
                    "final": True,
                    "local_failure": True,
                }
            )

    def op_stats(self, message: dict) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.emit(
            {
                "ev": "stats",
                "request": message.get("request"),
                "calls": len(self.calls),
                "frames_analysed": self.frames_analysed,
                "frames_lost": self.frames_lost,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "max_rss_kb": usage.ru_maxrss,
                "rejected_sources": dict(self._rejected_sources),
                "media": self._media_totals(),
            }
        )

    def _media_totals(self) -> dict:
        """RTP packets and jitter-buffer counters summed over the live calls."""
        totals = dict.fromkeys(
            (
                "calls",
                "rtp_rx",
                "rtp_tx",
                "rx_loss",
                "jb_empty",
                "jb_lost",
                "jb_discard",
            ),
            0,
        )
        for record in self.calls.values():
            if not record.media_active:
                continue
            try:
                stat = record.call.getStreamStat(record.media_index)
            except pj.Error:
                continue
            totals["calls"] += 1
            totals["rtp_rx"] += stat.rtcp.rxStat.pkt
            totals["rtp_tx"] += stat.rtcp.txStat.pkt
            totals["rx_loss"] += stat.rtcp.rxStat.loss
            totals["jb_empty"] += stat.jbuf.empty
            totals["jb_lost"] += stat.jbuf.lost
            totals["jb_discard"] += stat.jbuf.discard
        return totals

    def op_shutdown(self, message: dict) -> None:
        self.running = False

    # ------------------------------------------------------------- callbacks

    def on_incoming_call(self, prm) -> None:
        source = prm.rdata.srcAddress
        host = source.rpartition(":")[0].strip("[]") or source
        if host not in self.spec.get("trunk_sources", []):
            # Reject before anything else so a flood of INVITEs from an
            # unknown source never holds a call slot past this callback.
            # PJSIP 2.15.1 aborts (pjsip_rx_data_free_cloned: rdata) when a
            # call without an SDP offer is hung up inside this callback, so
            # the 403 is sent as soon as the callback has returned.
            self._to_reject.append(_Call(self, self.account, "rejected", prm.callId))
            count = self._rejected_sources.get(host, 0) + 1
            self._rejected_sources[host] = count
            if count == 1 or count % 100 == 0:
                self.emit({"ev": "rejected", "source": host, "count": count})
            return
        self._inbound_serial += 1
        key = f"{self.name}-in-{self._inbound_serial}"
        call = _Call(self, self.account, key, prm.callId)
        record = _CallRecord(call, "inbound")
        self.calls[key] = record
        info = call.getInfo()
        self.emit(
            {
                "ev": "incoming",
                "call": key,
                "remote_uri": info.remoteUri,
                "local_uri": info.localUri,
                "source": host,
                "headers": parse_x_headers(prm.rdata.wholeMsg),
            }
        )

    def on_call_state(self, call: _Call, prm=None) -> None:
        if call.key.startswith("probe-") or call.key == "rejected":
            return
        record = self.calls.get(call.key)
        if record is None:
            return
        info = call.getInfo()
        state = info.state
        code, reason = _status_reason(info)
        answered_now = state in (
            pj.PJSIP_INV_STATE_CONNECTING,
            pj.PJSIP_INV_STATE_CONFIRMED,
        )
        if answered_now and not record.answered:
            record.answered = True
            record.ring_deadline = None
            self._restart_analysis_at_answer(record)
        event = {
            "ev": "state",
            "call": call.key,
            "state": info.stateText.upper(),
            "code": code,
            "reason": reason,
        }
        if state == pj.PJSIP_INV_STATE_EARLY:
            record.provisional = True
        if state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if not record.answered and record.tap is not None:
                # A final response can follow early media (a special
                # information tone, then 404) within one tick: analyse the
                # frames already received, so their verdict is sent before
                # the call's end and the flow reports what was heard.
                self._analyse_taps()
            event["answered"] = record.answered
            event["timed_out"] = record.timed_out
            event["provisional"] = record.provisional
            event["credentials_sent"] = _sent_credentials(prm)
            event["duration_s"] = info.connectDuration.sec
            if record.timed_out and not record.provisional:
                # PJSIP sends no CANCEL before a provisional response
                # (RFC 3261 section 9.1) and keeps the call slot until the
                # INVITE transaction times out (timer B, 64 x T1 = 32 s),
                # although it reports the call disconnected at once.
                event["slot_held_s"] = TIMER_B_S
            self._release(call.key)
        self.emit(event)

    def on_call_media_state(self, call: _Call) -> None:
        record = self.calls.get(call.key)
        if record is None or record.media_active:
            return
        info = call.getInfo()
        for index, media in enumerate(info.media):
            if (
                media.type == pj.PJMEDIA_TYPE_AUDIO
                and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE
            ):
                record.media_active = True
                record.media_index = index
                self._attach_tap(record, call.getAudioMedia(index))
                self.emit(
                    {"ev": "media", "call": call.key, "early": not record.answered}
                )
                return

    # ---------------------------------------------------------------- media

    def _attach_tap(self, record: _CallRecord, audio) -> None:
        if not self.spec.get("tap", True):
            return
        if self.analyser is not None:
            slot = self.analyser.open(answered=record.answered)
        elif self.free_slots:
            slot = self.free_slots.pop()
        else:
            return
        if self._idle_taps:
            tap = self._idle_taps.pop()
            tap.retarget(self.ring, slot)
        else:
            tap = _Tap(self.ring, slot)
            media_format = pj.MediaFormatAudio()
            media_format.type = pj.PJMEDIA_TYPE_AUDIO
            media_format.init(
                pj.PJMEDIA_FORMAT_PCM, SAMPLE_RATE_HZ, 1, self.tap_frame_ms * 1000, 16
            )
            tap.createPort(f"tap-{len(self._all_taps)}", media_format)
            self._all_taps.append(tap)
        audio.startTransmit(tap)
        record.tap = tap
        record.slot = slot
        record.read_count = tap.count
        if self.dump_dir:
            record.dumped = []

    def _reject_pending(self) -> None:
        while self._to_reject:
            call = self._to_reject.pop()
            parameters = pj.CallOpParam(True)
            parameters.statusCode = 403
            try:
                call.hangup(parameters)
            except pj.Error as error:
                logger.debug("%s: reject failed: %s", self.name, error)
            # Dropped here, while its call id is free: see _release.
            del call

    def _restart_analysis_at_answer(self, record: _CallRecord) -> None:
        # The analysis of early media (ringback, an announcement) may have
        # ended in a verdict already; the answered call gets a fresh one.
        if self.analyser is None or record.slot is None:
            return
        if not record.verdict_sent:
            self.analyser.mark_answered(record.slot)
            return
        self.analyser.close(record.slot)
        record.slot = self.analyser.open(answered=True)
        record.tap.retarget(self.ring, record.slot)
        record.read_count = record.tap.count
        record.verdict_sent = False
        if record.dumped is not None:
            record.dumped = []

    def tick(self, now: float) -> None:
        """Feed the tap frames received since the last tick to the analyser.

        Each pass takes the oldest unread tap frame of every call into one
        staging block and analyses it as ``sub_frames`` batches of 20 ms,
        so the Python cost per tick does not grow with the frames per tap.
        """
        self._check_ring_timers(now)
        self._analyse_taps()

    def _analyse_taps(self) -> None:
        tapped = [r for r in self.calls.values() if r.tap is not None]
        if not tapped:
            return
        ring = self.ring
        stage = self.stage
        present = self.present
        analysed = []
        while True:
            present[:] = False
            batch = []
            for record in tapped:
                written = record.tap.count
                pending = written - record.read_count
                if pending <= 0:
                    continue
                if pending > RING_FRAMES:
                    lost = (pending - RING_FRAMES) * self.sub_frames
                    record.lost_frames += lost
                    self.frames_lost += lost
                    record.read_count = written - RING_FRAMES
                slot = record.slot
                stage[slot] = ring[record.read_count & (RING_FRAMES - 1), slot]
                present[slot] = True
                if record.dumped is not None:
                    record.dumped.append(stage[slot].copy())
                record.read_count += 1
                batch.append(record)
            if not batch:
                break
            analysed.extend(batch)
            self.frames_analysed += len(batch) * self.sub_frames
            if self.analyser is not None:
                for start in range(0, stage.shape[1], SAMPLES_PER_FRAME):
                    self.analyser.process(
                        stage[:, start : start + SAMPLES_PER_FRAME], present
                    )
        if self.analyser is not None:
            for record in dict.fromkeys(analysed):
                self._report_analysis(record)

    def _report_analysis(self, record: _CallRecord) -> None:
        slot = record.slot
        for event in self.analyser.drain_events(slot):
            self.emit({"ev": "dsp", "call": record.call.key, "event": _plain(event)})
        if record.verdict_sent:
            return
        verdict = self.analyser.verdict(slot)
        if verdict is None:
            return
        record.verdict_sent = True
        plain = _plain(verdict)
        plain["call"] = record.call.key
        plain["ev"] = "verdict"
        plain["answered"] = record.answered
        self.emit(plain)

    def _check_ring_timers(self, now: float) -> None:
        # PJSIP has no ring timer and waits 32 s (timer B) for a dead
        # peer, so the engine's own deadline ends an unanswered call.
        for key, record in list(self.calls.items()):
            if record.ring_deadline is not None and now >= record.ring_deadline:
                record.ring_deadline = None
                record.timed_out = True
                self.op_hangup({"call": key})

    def _stop_player(self, record: _CallRecord) -> None:
        record.queued_files = []
        if record.player is not None:
            self._graveyard.append(record.player)
            record.player = None

    def _finish_players(self) -> None:
        while self.finished_players:
            player = self.finished_players.pop()
            record = self.calls.get(player.key)
            if record is not None and record.player is player:
                record.player = None
                self._graveyard.append(player)
                if record.queued_files:
                    self._play_next(record)
                else:
                    self.emit({"ev": "play_done", "call": player.key})

    def _release(self, key: str) -> None:
        record = self.calls.pop(key, None)
        if record is None:
            return
        if record.dumped is not None:
            self._write_dump(key, record.dumped)
        if record.tap is not None:
            if self.analyser is not None:
                self.analyser.close(record.slot)
            else:
                self.free_slots.append(record.slot)
            # Taps are reused, never destroyed while the endpoint runs: the
            # conference bridge removes a port on its clock thread after the
            # request, and a tap destroyed meanwhile was seen receiving
            # frames after its Python object was freed (under overload in
            # bench/sip_capacity.py).
            self._idle_taps.append(record.tap)
            record.tap = None
        self._stop_player(record)
        # The Call object is not kept: it dies when the DISCONNECTED callback
        # returns. pjsua2's ~Call clears the user data of its call id and
        # hangs up that id if a call is active on it, so an object that
        # outlived the reuse of its id by a new call would end the new call.

    def _write_dump(self, key: str, frames: list[np.ndarray]) -> None:
        # A debugging aid: the audio exactly as the analyser received it,
        # to compare with what the far end played.
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
        path = os.path.join(self.dump_dir, f"{name}.wav")
        samples = np.concatenate(frames) if frames else np.zeros(0, np.int16)
        try:
            # Renamed when complete, so a reader never sees half a file.
            with wave.open(f"{path}.part", "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(SAMPLE_RATE_HZ)
                out.writeframes(samples.astype("<i2").tobytes())
            os.replace(f"{path}.part", path)
        except OSError as error:
            logger.warning("%s: writing %s failed: %s", self.name, path, error)
            return
        self.emit({"ev": "tap_dump", "call": key, "path": path})

    def _collect(self) -> None:
        # Drop pjsua2 objects on the main thread, outside their callbacks.
        if self._graveyard:
            self._graveyard.clear()
            gc.collect(0)

    # -------------------------------------------------------------- shutdown

    def shutdown(self) -> None:
        """Hang up, release every pjsua2 object, then destroy the library."""
        try:
            self.endpoint.hangupAllCalls()
            deadline = time.monotonic() + 1.0
            while self.calls and time.monotonic() < deadline:
                self.endpoint.libHandleEvents(PUMP_MS)
        except pj.Error:
            pass
        for key in list(self.calls):
            self._release(key)
        self.finished_players.clear()
        self._graveyard.clear()
        self._idle_taps.clear()
        self._all_taps.clear()
        self.analyser = None
        self.account.shutdown()
        del self.account
        gc.collect()
        self.endpoint.libDestroy()
        del self.endpoint
        self.channel.close()
        if self._sip_socket is not None:
            self._sip_socket.close()


def _find_udp_socket(address: str) -> socket.socket | None:
    """Return a duplicate of this process's UDP socket bound to ``address``.

    pjsua2 does not expose the SIP transport's descriptor; the main loop
    needs it to wake up when a SIP message arrives.
    """
    host, _, port = address.rpartition(":")
    expected = (host.strip("[]"), int(port))
    for name in os.listdir("/proc/self/fd"):
        try:
            descriptor = os.dup(int(name))
        except OSError:
            continue
        try:
            candidate = socket.socket(fileno=descriptor)
        except OSError:
            os.close(descriptor)
            continue
        try:
            if (
                candidate.type == socket.SOCK_DGRAM
                and candidate.getsockname()[:2] == expected
            ):
                return candidate
        except OSError:
            pass
        candidate.close()
    return None


def _plain(value) -> dict:
    """Convert a dsp verdict or event object into msgpack-friendly builtins."""
    if isinstance(value, dict):
        items = value.items()
    elif hasattr(value, "_asdict"):
        items = value._asdict().items()
    elif hasattr(value, "__dataclass_fields__"):
        items = ((name, getattr(value, name)) for name in value.__dataclass_fields__)
    else:
        items = (
            (name, getattr(value, name))
            for name in dir(value)
            if not name.startswith("_") and not callable(getattr(value, name))
        )
    plain = {}
    for name, item in items:
        if hasattr(item, "name") and hasattr(item, "value"):
            item = item.name
        elif isinstance(item, np.generic):
            item = item.item()
        elif not isinstance(item, (str, int, float, bool, type(None), list, tuple)):
            item = str(item)
        plain[name] = item
    return plain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="inherited socket")
    arguments = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("CALLSURE_SIP_WORKER_LOG", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    sock = socket.socket(fileno=arguments.fd)
    channel = MessageChannel(sock)
    spec = None
    while spec is None:
        messages = channel.receive()
        if messages is None:
            return 1
        if messages:
            spec = messages[0]
    worker = EndpointWorker(channel, spec)
    worker.start()
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
