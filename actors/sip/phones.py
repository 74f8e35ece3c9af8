"""Phones: pjsua2 SIP peers on 127.0.0.1, each bank in its own process.

The test suite and ``callsure demo`` use them as customers, callers and
agents.

A ``PhoneBank`` is one pjsua2 endpoint process (one endpoint per process)
answering for many phone numbers, each with a behaviour keyed by the user
part of the request URI:

- ``answer``: ring (180), answer after ``delay_s``, play ``play`` (a WAV
  file, for example from the AMD corpus), optionally send RFC 4733 DTMF
  ``dtmf`` ``dtmf_after_s`` seconds after answering, record what it hears
  to ``record`` (a WAV path) and hang up after ``hangup_after_s``;
- ``reject``: answer with the final status ``code`` after ``delay_s``;
- ``ring``: send 180 and never answer;
- ``early``: send 183 Session Progress with SDP, play ``play`` as early
  media, and after ``early_s`` seconds go on with the behaviour ``then``
  (``reject`` with its ``code``, or ``answer`` with its own keys; the
  early player stops at that moment).

An answered call may also play WAV files later with ``play_plan``, a list
of ``[after_s, path]`` counted from answer: each file replaces the one
playing (in-band DTMF tones played after a greeting, for example).

A number may also map to a list of behaviours: its first incoming call
uses the first, the next call the second, and the last one repeats (a
customer whose voicemail answers the first callback and who picks up the
second). ``PhoneBank.set_behaviours`` adds or replaces numbers while the
bank runs.

``PhoneBank.dial`` places an outgoing call (a caller reaching the gateway)
with the same keys, plus ``dtmf_plan``: a list of ``[after_s, digits]``.
A phone that receives a REFER calls its Refer-To URI as a new call with a
key of its own, playing the same WAV, and reports ``transfer``.

The bank reports ``incoming`` (with the ``X-`` headers received and the
behaviour chosen), ``state``, ``dtmf`` and ``recorded`` events, each with
``call``, a key unique to the call within the bank; ``PhoneBank.wait_for``
returns the first event matching a predicate, or ``on_event`` receives
every event as it arrives. The process runs as
``python -m callsure.actors.sip.phones --fd N``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


class PhoneBank:
    """Handle on one phone process, from the process that drives it.

    Parameters
    ----------
    behaviours : dict
        User part (``+15550001``) -> behaviour dict; see the module docstring.
    default : dict, optional
        Behaviour for numbers not listed; ``reject`` with 404 by default.
    bind_address : str
    name : str
        Name of the bank in its events and errors.
    on_event : callable, optional
        ``on_event(event: dict)``, called on the reader thread for every
        event; without it events are kept for ``wait_for``.
    ready_timeout_s : float
        Seconds to wait for the process's endpoint; raises ``TimeoutError``.
        A bank starts in about a second on an idle machine, but took over
        20 s with the load average above 50.
    """

    def __init__(
        self,
        behaviours: dict[str, dict],
        default: dict | None = None,
        bind_address: str = "127.0.0.1",
        name: str = "phones",
        on_event=None,
        ready_timeout_s: float = 60.0,
    ):
        from callsure.actors.sip.wire import MessageChannel

        self.events: list[dict] = []
        self.on_event = on_event
        self._condition = threading.Condition()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "callsure.actors.sip.phones",
                "--fd",
                str(child.fileno()),
            ],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        child.close()
        self.channel = MessageChannel(parent)
        self.channel.send(
            {
                "name": name,
                "bind_address": bind_address,
                "behaviours": behaviours,
                "default": default or {"action": "reject", "code": 404},
            }
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = self.wait_for(lambda e: e["ev"] == "ready", timeout_s=ready_timeout_s)
        self.address = ready["sip_address"]
        self.pid = ready["pid"]

    def uri_template(self, field: str = "number") -> str:
        return f"sip:{{{field}}}@{self.address}"

    def _read(self) -> None:
        while True:
            try:
                messages = self.channel.receive()
            except OSError:
                messages = None
            if messages is None:
                break
            if self.on_event is not None:
                for message in messages:
                    try:
                        self.on_event(message)
                    except Exception:  # noqa: BLE001 - the reader must not die
                        logger.exception("phones: event handler failed")
                kept = [m for m in messages if m.get("ev") == "ready"]
            else:
                kept = messages
            with self._condition:
                self.events.extend(kept)
                self._condition.notify_all()

    def send(self, command: dict) -> None:
        self.channel.send(command)

    def set_behaviours(self, behaviours: dict[str, dict | list]) -> None:
        """Add or replace the behaviours of numbers while the bank runs."""
        self.send({"op": "behaviours", "behaviours": behaviours})

    def dial(self, uri: str, user: str, **behaviour) -> None:
        """Call ``uri`` from this bank; events carry ``user``."""
        self.send({"op": "dial", "uri": uri, "user": user, **behaviour})

    def wait_for(self, predicate, timeout_s: float = 15.0) -> dict:
        """Return the first event matching ``predicate``; raise on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"no matching event in {timeout_s} s; events: {self.events}"
                    )
                self._condition.wait(remaining)

    def close(self) -> None:
        try:
            self.channel.send({"op": "shutdown"})
        except OSError:
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.channel.close()

    def __enter__(self) -> PhoneBank:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def wav_rms(path: str | Path, timeout_s: float = 5.0) -> float:
    """Root mean square of a 16-bit WAV file's samples.

    pjsua2 finalises a recording's header a conference tick after the
    recorder is destroyed (the bridge removes ports asynchronously), so
    the file is read again until its header is complete.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with wave.open(str(path), "rb") as wav:
                frames = wav.readframes(wav.getnframes())
            break
        except (wave.Error, EOFError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    samples = np.frombuffer(frames, dtype=np.int16)
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def concatenate_wavs(sources, target: str | Path) -> Path:
    """Write the 16-bit mono WAV files ``sources`` one after another."""
    frames = []
    parameters = None
    for source in sources:
        with wave.open(str(source), "rb") as wav:
            parameters = wav.getparams()
            frames.append(wav.readframes(wav.getnframes()))
    with wave.open(str(target), "wb") as out:
        out.setparams(parameters)
        out.writeframes(b"".join(frames))
    return Path(target)


def pad_wav(source: str | Path, target: str | Path, silence_s: float) -> Path:
    """Copy a 16-bit mono WAV with ``silence_s`` seconds of silence appended."""
    with wave.open(str(source), "rb") as wav:
        parameters = wav.getparams()
        frames = wav.readframes(wav.getnframes())
    padding = b"\x00\x00" * int(parameters.framerate * silence_s)
    with wave.open(str(target), "wb") as out:
        out.setparams(parameters)
        out.writeframes(frames + padding)
    return Path(target)


# ----------------------------------------------------------------------------
# The phone process (pjsua2 side). Everything below runs in the child.


def _run_phones(fd: int) -> int:
    import pjsua2 as pj

    from callsure.actors.sip.wire import MessageChannel
    from callsure.actors.sip.worker import parse_x_headers

    channel = MessageChannel(socket.socket(fileno=fd))
    spec = None
    while spec is None:
        messages = channel.receive()
        if messages is None:
            return 1
        spec = messages[0] if messages else None

    endpoint = pj.Endpoint()
    endpoint.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0
    config.uaConfig.mainThreadOnly = True
    config.uaConfig.maxCalls = 32
    config.medConfig.maxMediaPorts = 80
    config.medConfig.clockRate = 8000
    config.medConfig.sndClockRate = 8000
    config.medConfig.ecTailLen = 0
    config.medConfig.noVad = True
    # PJSUA closes the sound device 1 s after the last call ended and no
    # conference connection is left (sndAutoCloseTime, PJSIP 2.15.1). The
    # null device is the conference clock. A call that starts within that
    # second and connects no port (a caller without a WAV) does not cancel
    # the close, so its stream stops sending RTP, RFC 4733 digits included,
    # one second after the previous call ended. Never close the device.
    config.medConfig.sndAutoCloseTime = -1
    config.logConfig.level = 0
    config.logConfig.consoleLevel = 0
    endpoint.libInit(config)
    transport_config = pj.TransportConfig()
    transport_config.boundAddress = spec["bind_address"]
    transport = endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport_config)
    address = endpoint.transportGetInfo(transport).localName
    endpoint.libStart()
    endpoint.audDevManager().setNullDev()
    for codec in endpoint.codecEnum2():
        name = codec.codecId.lower()
        if name.startswith("pcmu/"):
            priority = 255
        elif name.startswith("pcma/"):
            priority = 200
        else:
            priority = 0
        endpoint.codecSetPriority(codec.codecId, priority)

    state = {"running": True, "timers": [], "calls": {}, "recorders": []}
    # Incoming calls so far per number, to pick from a list of behaviours.
    call_counts: dict[str, int] = {}
    serial = iter(range(1, 1 << 62))

    def emit(event):
        try:
            channel.send(event)
        except OSError:
            state["running"] = False

    def later(delay_s, function):
        # Timers name calls by key, never hold a Call: pjsua2's Call
        # destructor hangs up its call id with 603, and PJSUA reuses ids,
        # so a Call object outliving its call would end a later call.
        state["timers"].append((time.monotonic() + delay_s, function))

    class Phone(pj.Call):
        def __init__(self, account, call_id, user, behaviour):
            super().__init__(account, call_id)
            self.user = user
            self.behaviour = behaviour
            self.player = None
            self.recorder = None
            self.media_started = False
            self.key = f"{user}#{call_id}"
            # Set on DISCONNECTED: isActive() asks PJSUA about the call id,
            # which a later call may already reuse.
            self.ended = False

        def onCallState(self, prm):  # noqa: N802
            info = self.getInfo()
            event = {
                "ev": "state",
                "call": self.key,
                "user": self.user,
                "state": info.stateText.upper(),
                "code": info.lastStatusCode,
            }
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.ended = True
                self.player = None
                if self.recorder is not None:
                    # Closed by the main loop, which then reports the file.
                    state["recorders"].append(
                        (self.recorder, self.key, self.user, self.behaviour["record"])
                    )
                    self.recorder = None
                state["calls"].pop(self.key, None)
                # Drop the last reference inside this callback: a Call
                # object outliving its call id would end the id's next call.
            emit(event)

        def onCallMediaState(self, prm):  # noqa: N802
            if self.media_started or not self.hasMedia():
                return
            self.start_media()

        def start_media(self):
            """Play, record and schedule the digits of the current behaviour."""
            self.media_started = True
            audio = self.getAudioMedia(-1)
            if self.behaviour.get("play"):
                self.play(self.behaviour["play"])
            if self.behaviour.get("record") and self.recorder is None:
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(self.behaviour["record"])
                audio.startTransmit(self.recorder)
            plan = list(self.behaviour.get("dtmf_plan", []))
            if self.behaviour.get("dtmf"):
                plan.append(
                    (self.behaviour.get("dtmf_after_s", 1.0), self.behaviour["dtmf"])
                )
            for after_s, digits in plan:
                later(after_s, lambda k=self.key, d=digits: send_digits(k, d))
            for after_s, path in self.behaviour.get("play_plan", []):
                later(after_s, lambda k=self.key, p=path: play_file(k, p))

        def play(self, path):
            # A new player replaces the one playing, which stops.
            self.player = pj.AudioMediaPlayer()
            self.player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
            self.player.startTransmit(self.getAudioMedia(-1))

        def onDtmfDigit(self, prm):  # noqa: N802
            emit(
                {"ev": "dtmf", "call": self.key, "user": self.user, "digit": prm.digit}
            )

        def onCallTransferRequest(self, prm):  # noqa: N802
            # PJSUA places the call that a REFER requests with this call's user
            # data. Without a Call object of its own, pjsua2 sends that call's
            # events to this object, which is freed when this call ends.
            behaviour = {"play": self.behaviour.get("play", "")}
            child = Phone(state["account"], pj.PJSUA_INVALID_ID, self.user, behaviour)
            child.key = f"{self.user}#{next(serial)}"
            state["calls"][child.key] = child
            prm.newCall = child
            emit(
                {
                    "ev": "transfer",
                    "call": self.key,
                    "new_call": child.key,
                    "user": self.user,
                    "uri": prm.dstUri,
                }
            )

    class Account(pj.Account):
        def onIncomingCall(self, prm):  # noqa: N802
            whole = prm.rdata.wholeMsg
            request_line = whole.split("\r\n", 1)[0]
            uri = request_line.split(" ")[1]
            user = uri.split(":", 1)[1].split("@", 1)[0]
            behaviour = spec["behaviours"].get(user, spec["default"])
            if isinstance(behaviour, list):
                count = call_counts.get(user, 0)
                call_counts[user] = count + 1
                behaviour = behaviour[min(count, len(behaviour) - 1)]
            call = Phone(self, prm.callId, user, behaviour)
            call.key = f"{user}#{next(serial)}"
            state["calls"][call.key] = call
            emit(
                {
                    "ev": "incoming",
                    "call": call.key,
                    "user": user,
                    "headers": parse_x_headers(whole),
                    "source": prm.rdata.srcAddress,
                    "action": behaviour.get("action", "answer"),
                    "play": behaviour.get("play", ""),
                    "code": behaviour.get("code", 0),
                }
            )
            action = behaviour.get("action", "answer")
            ringing = pj.CallOpParam(True)
            # 183 with SDP sets up early media; its player starts when the
            # media is active (onCallMediaState).
            ringing.statusCode = 183 if action == "early" else 180
            call.answer(ringing)
            if action == "early":
                then = behaviour.get("then", {})
                later(
                    float(behaviour.get("early_s", 3.0)),
                    lambda k=call.key, t=then: go_on(k, t),
                )
            else:
                schedule_behaviour(call.key, behaviour)

    def schedule_behaviour(key, behaviour):
        action = behaviour.get("action", "answer")
        delay = float(behaviour.get("delay_s", 0.0))
        if action == "answer":
            later(delay, lambda: answer(key, 200))
            if behaviour.get("hangup_after_s"):
                later(delay + behaviour["hangup_after_s"], lambda: hang_up(key))
        elif action == "reject":
            code = int(behaviour.get("code", 486))
            later(delay, lambda: hang_up(key, code))

    def go_on(key, behaviour):
        # The end of early media: stop its player and take the next
        # behaviour, whose media starts when the call is answered.
        call = live_call(key)
        if call is None:
            return
        call.player = None
        record = behaviour.get("record") or call.behaviour.get("record")
        call.behaviour = {**behaviour, "record": record}
        call.media_started = False
        emit({"ev": "early_end", "call": key, "user": call.user})
        schedule_behaviour(key, behaviour)

    def play_file(key, path):
        call = live_call(key)
        if call is not None:
            call.play(path)
            emit({"ev": "played", "call": key, "user": call.user, "path": path})

    def live_call(key):
        call = state["calls"].get(key)
        if call is None or call.ended or not call.isActive():
            return None
        return call

    def send_digits(key, digits):
        call = live_call(key)
        if call is not None:
            call.dialDtmf(digits)
            emit({"ev": "dtmf_sent", "call": key, "user": call.user, "digits": digits})

    def answer(key, code):
        call = live_call(key)
        if call is not None:
            parameters = pj.CallOpParam(True)
            parameters.statusCode = code
            call.answer(parameters)
            if not call.media_started and call.hasMedia():
                # After early media PJSUA reports no new media state at the
                # 200, so the answered behaviour's media starts here.
                call.start_media()

    def hang_up(key, code=0):
        call = live_call(key)
        if call is not None:
            parameters = pj.CallOpParam(True)
            if code:
                parameters.statusCode = code
            call.hangup(parameters)

    def run_due_timers():
        # A function of its own, so no closure holding a call outlives it:
        # a Call alive at libDestroy aborts the process.
        now = time.monotonic()
        due = [t for t in state["timers"] if t[0] <= now]
        state["timers"] = [t for t in state["timers"] if t[0] > now]
        for _, function in due:
            try:
                function()
            except pj.Error as error:
                emit({"ev": "timer_failed", "reason": error.reason})

    account_config = pj.AccountConfig()
    account_config.idUri = f"sip:phones@{address}"
    account_config.mediaConfig.transportConfig.boundAddress = spec["bind_address"]
    account = Account()
    account.create(account_config)
    state["account"] = account

    def dial(message):
        # An outgoing call from this bank, for example a caller reaching
        # the gateway's IVR; its behaviour keys are those of an answer.
        call = Phone(state["account"], pj.PJSUA_INVALID_ID, message["user"], message)
        call.key = f"{message['user']}#{next(serial)}"
        state["calls"][call.key] = call
        try:
            parameters = pj.CallOpParam(True)
            # The From user is the calling number the gateway identifies.
            parameters.txOption.localUri = f"sip:{message['user']}@{address}"
            call.makeCall(message["uri"], parameters)
        except pj.Error as error:
            state["calls"].pop(call.key)
            emit(
                {
                    "ev": "dial_failed",
                    "call": call.key,
                    "user": message["user"],
                    "reason": error.reason,
                }
            )
            return
        if message.get("hangup_after_s"):
            later(message["hangup_after_s"], lambda k=call.key: hang_up(k))

    emit({"ev": "ready", "sip_address": address, "pid": os.getpid()})

    while state["running"]:
        endpoint.libHandleEvents(10)
        messages = channel.poll()
        if messages is None:
            break
        for message in messages:
            if message.get("op") == "shutdown":
                state["running"] = False
            elif message.get("op") == "dial":
                dial(message)
            elif message.get("op") == "behaviours":
                spec["behaviours"].update(message["behaviours"])
        run_due_timers()
        while state["recorders"]:
            recorder, key, user, path = state["recorders"].pop()
            # Destroying the recorder writes the WAV header's sizes.
            del recorder
            emit({"ev": "recorded", "call": key, "user": user, "path": path})

    endpoint.hangupAllCalls()
    deadline = time.monotonic() + 1.0
    while state["calls"] and time.monotonic() < deadline:
        endpoint.libHandleEvents(10)
    for call in state["calls"].values():
        call.player = None
        call.recorder = None
    state["calls"].clear()
    state["recorders"].clear()
    state["timers"].clear()
    state.clear()
    account.shutdown()
    del account
    gc.collect()
    endpoint.libDestroy()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="pjsua2 phones on loopback")
    parser.add_argument("--fd", type=int, required=True)
    sys.exit(_run_phones(parser.parse_args().fd))
