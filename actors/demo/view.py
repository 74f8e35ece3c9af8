"""The live view: one screen refreshed each second, or one line when piped.

On a terminal the view redraws a short table: queues, agents, promises
due, kept and late, and call-progress verdicts. When standard output is
not a terminal it prints one plain line per second, which logs keep.
"""

from __future__ import annotations

import sys
import threading

REFRESH_S = 1.0
CLEAR = "\x1b[H\x1b[2J"


class LiveView:
    """Print the tally once per ``REFRESH_S`` on a thread of its own."""

    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.terminal = self.stream.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tally = None

    def start(self, tally) -> None:
        if not self.enabled:
            return
        self._tally = tally
        self._thread = threading.Thread(target=self._run, name="view", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(REFRESH_S):
            text = self.render()
            if self.terminal:
                self.stream.write(CLEAR + text + "\n")
            else:
                self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        """Format the main counts as one plain line."""
        tally = self._tally
        desk = tally.desk
        counts = tally.snapshot()
        live = desk.stats
        queues = " ".join(f"{g}={n}" for g, n in desk.queue_lengths().items())
        verdicts = ",".join(f"{k}:{v}" for k, v in sorted(counts["verdicts"].items()))
        return (
            f"t={desk.elapsed_s:5.0f}s queue {queues} "
            f"busy={sum(not a.ready for a in desk.agents.values())}/{len(desk.agents)} "
            f"reserved={desk.reserved_agents()} "
            f"ivr={counts['ivr_active']} promises={counts['promises']} "
            f"due={counts['due']} dialed={counts['dialed']} kept={counts['kept']} "
            f"late={counts['late']} failed={counts['failed']} "
            f"sms={counts['sms']} answered={live.answered} "
            f"abandoned={live.abandoned} amd[{verdicts}]"
        )

    def render(self) -> str:
        """Format the terminal screen."""
        tally = self._tally
        desk = tally.desk
        counts = tally.snapshot()
        live = desk.stats
        workload = tally.workload
        log_now = workload.start_local.timestamp() + desk.elapsed_s * workload.speed
        from datetime import datetime

        clock = datetime.fromtimestamp(log_now, workload.start_local.tzinfo)
        lines = [
            f"callsure surge demo   log time {clock:%Y-%m-%d %H:%M:%S}   "
            f"real {desk.elapsed_s:.0f} s at {workload.speed:g}x",
            "",
            "queue   waiting  agents (busy/all)",
        ]
        lengths = desk.queue_lengths()
        for group, agent_ids in workload.agents.items():
            busy = sum(not desk.agents[a].ready for a in agent_ids)
            lines.append(f"{group:8}{lengths.get(group, 0):7}  {busy}/{len(agent_ids)}")
        lines += [
            "",
            f"live callers  arrived {live.arrived}  answered {live.answered}  "
            f"abandoned {live.abandoned}  to IVR {live.to_ivr}  "
            f"left with a promise {live.left_with_promise}  "
            f"agents reserved for callbacks {desk.reserved_agents()}",
            f"promises      made {counts['promises']}  pending {counts['pending']}  "
            f"due {counts['due']}  kept {counts['kept']}  late {counts['late']}  "
            f"failed {counts['failed']}",
            f"callbacks     dialed {counts['dialed']}  retries {counts['retries']}  "
            f"SMS requests {counts['sms']}  IVR calls now {counts['ivr_active']}",
            "AMD verdicts  "
            + (
                "  ".join(f"{k} {v}" for k, v in sorted(counts["verdicts"].items()))
                or "none yet"
            ),
        ]
        return "\n".join(lines)
