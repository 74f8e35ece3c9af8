"""Callers reaching the gateway's surge IVR from the demo's phone banks."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from callsure.actors.demo.workload import DemoCall

IVR_URI_USER = "surge"
# Caller lines: two banks of the wheel's four calls, six in use at once so
# IVR calls leave gateway slots for callbacks.
CALLER_BANKS = 2
IVR_LINES = 6
# When the caller presses keys, in seconds after the call is answered:
# the greeting with the wait takes about 4 s, the offer prompt 7 s more
# and accepts a key while it plays.
OFFER_KEY_S = 5.5
TIME_KEYS_S = 8.5
FALLBACK_KEY_S = 17.0
CALLER_HANGUP_S = 30.0
# A caller who keys a time requests the first whole minute at least this
# long after pressing the keys, so the time is 1 to 2 minutes ahead then.
# The allowance covers call setup before the IVR picks up.
KEYED_LEAD_S = 60.0
CALL_SETUP_ALLOWANCE_S = 5.0
# IVR choices: 1 = when an agent is free, 3 = at the predicted time,
# 2 = at a keyed time, "" = hang up and keep waiting in the queue.
CHOICES = (("1", 0.45), ("3", 0.33), ("2", 0.14), ("", 0.08))


class IvrDialer:
    """Send callers to the gateway's IVR from the caller phone banks."""

    def __init__(self, banks, gateway_addresses, zone: str, tally):
        self.banks = banks
        self.addresses = gateway_addresses
        self.zone = zone
        self.tally = tally
        self.on_ended = None
        self._generator = random.Random(0)
        self._serial = 0

    def seed(self, seed: int) -> None:
        self._generator = random.Random(seed + 1)

    def dial(self, call: DemoCall) -> bool:
        if self.tally.ivr_lines_in_use() >= IVR_LINES:
            return False
        choice = self._generator.choices(
            [key for key, _ in CHOICES], [share for _, share in CHOICES]
        )[0]
        plan: list[list] = []
        if choice in ("1", "3"):
            plan.append([OFFER_KEY_S, choice])
        elif choice == "2":
            # If the engine finds the time infeasible, the caller takes the
            # first free agent instead.
            plan += [
                [OFFER_KEY_S, "2"],
                [TIME_KEYS_S, keyed_time(datetime.now(ZoneInfo(self.zone)))],
                [FALLBACK_KEY_S, "1"],
            ]
        self._serial += 1
        bank = self.banks[self._serial % len(self.banks)]
        address = self.addresses[self._serial % len(self.addresses)]
        self.tally.on_ivr_dialed(call, choice)
        bank.dial(
            f"sip:{IVR_URI_USER}@{address}",
            user=call.phone_number,
            dtmf_plan=plan,
            hangup_after_s=CALLER_HANGUP_S if choice else OFFER_KEY_S + 1.0,
        )
        return True


def keyed_time(dialed_at: datetime) -> str:
    """Return the ``HHMM`` that a caller dialing at ``dialed_at`` keys.

    The phone process plays a plan fixed when the call is placed, so the
    time is chosen then, for the moment the keys are pressed. It is the
    first whole minute ``KEYED_LEAD_S`` or more after that moment.
    """
    keys_at = dialed_at + timedelta(
        seconds=CALL_SETUP_ALLOWANCE_S + TIME_KEYS_S + KEYED_LEAD_S
    )
    requested = keys_at.replace(second=0, microsecond=0)
    if requested < keys_at:
        requested += timedelta(minutes=1)
    return requested.strftime("%H%M")
