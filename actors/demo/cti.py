"""The CTI feed of the demo: agent states and contact events over gRPC."""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime

from callsure.actors.demo.workload import DemoCall

logger = logging.getLogger(__name__)


class CtiSender:
    """Send agent states and contact events over gRPC from one thread, in order.

    These feed the prediction model (queue, staffing, handling times and
    patience) and the customers' contact history (repeat callers).
    """

    def __init__(self, channel):
        from callsure.v1 import agent_pb2_grpc, contact_pb2_grpc

        self._agents = agent_pb2_grpc.AgentServiceStub(channel)
        self._contacts = contact_pb2_grpc.ContactServiceStub(channel)
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="cti", daemon=True)
        self._thread.start()

    def agent_state(self, agent_id: str, busy: bool) -> None:
        self._queue.put(("agent", (agent_id, busy), datetime.now(UTC)))

    def contact(self, kind: str, call: DemoCall, agent_id: str = "") -> None:
        """Queue a contact event: arrived, queued, answered, abandoned, ended."""
        self._queue.put(("contact", (kind, call, agent_id), datetime.now(UTC)))

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(5.0)

    def _run(self) -> None:
        from google.protobuf.timestamp_pb2 import Timestamp

        while True:
            item = self._queue.get()
            if item is None:
                return
            what, values, when = item
            stamp = Timestamp()
            stamp.FromDatetime(when)
            try:
                if what == "agent":
                    self._send_state(*values, stamp)
                else:
                    self._send_contact(*values, stamp)
            except Exception:  # noqa: BLE001 - one lost event must not stop the CTI
                logger.exception("cti: %s event %s not sent", what, values[0])

    def _send_state(self, agent_id: str, busy: bool, stamp) -> None:
        from callsure.v1 import agent_pb2

        state = agent_pb2.AGENT_STATE_BUSY if busy else agent_pb2.AGENT_STATE_READY
        self._agents.ReportAgentState(
            agent_pb2.ReportAgentStateRequest(
                agent=f"agents/{agent_id}", state=state, event_time=stamp
            ),
            timeout=5,
        )

    def _send_contact(self, kind: str, call: DemoCall, agent_id: str, stamp) -> None:
        from callsure.v1 import contact_pb2

        event = contact_pb2.ContactEvent(
            contact_id=f"log-{call.line}",
            type=CONTACT_TYPES[kind],
            event_time=stamp,
            queue=call.group,
            customer_id=call.customer_id,
            phone_number=call.phone_number,
            agent=f"agents/{agent_id}" if agent_id else "",
        )
        self._contacts.ReportContactEvent(
            contact_pb2.ReportContactEventRequest(event=event), timeout=5
        )


def _contact_types() -> dict[str, int]:
    from callsure.v1 import contact_pb2

    return {
        "arrived": contact_pb2.CONTACT_EVENT_TYPE_ARRIVED,
        "queued": contact_pb2.CONTACT_EVENT_TYPE_QUEUED,
        "answered": contact_pb2.CONTACT_EVENT_TYPE_ANSWERED,
        "abandoned": contact_pb2.CONTACT_EVENT_TYPE_ABANDONED,
        "ended": contact_pb2.CONTACT_EVENT_TYPE_ENDED,
    }


CONTACT_TYPES = _contact_types()
