"""Run the surge demo: wire the stack, drive the traffic, collect the report.

``run_demo`` builds the workload, starts the ``DemoStack``, configures the
server over gRPC (agents, dedicated customers, a retry ladder compressed
like the traffic), then lets the ``Desk`` replay the callers while the
gateway runs the IVR and dials the callbacks. Besides the desk's and the
gateway's threads, ``callsure.actors.demo.orders`` moves dial orders and
outcomes between the coordinator and the gateway, and
``callsure.actors.demo.cti`` sends agent states and contact events over
gRPC.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.duration_pb2 import Duration

from callsure.actors.demo.callers import CALLER_BANKS, IvrDialer
from callsure.actors.demo.cti import CtiSender
from callsure.actors.demo.orders import DIALER_NAME, Workers
from callsure.actors.demo.tally import Tally
from callsure.actors.demo.workload import (
    PREMIUM,
    VIP_AGENT,
    DemoWorkload,
    common_prior,
)
from callsure.actors.sip.callflow import ATTEMPT_ID_HEADER
from callsure.engine.exceptions import CallsureError
from callsure.engine.phone import mask_number

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    """Options of one demo run (the command's flags)."""

    log_path: Path
    recordings: Path
    start: str
    minutes: float
    speed: float
    seed: int
    drain_s: float
    retail_agents: int
    premium_agents: int
    db_path: str | None = None


def run_demo(
    config, options: DemoOptions, folder: Path, ray_folder: Path, view
) -> dict:
    """Run the demo end to end and return the report (see ``Tally.report``)."""
    from callsure.actors.demo.backend import GrpcIvrBackend
    from callsure.actors.demo.desk import Desk
    from callsure.actors.demo.stack import (
        DIAL_LEAD_S,
        DemoStack,
        demo_config,
        gateway_settings,
    )

    workload = DemoWorkload.build(
        options.log_path,
        options.recordings,
        options.start,
        options.minutes,
        options.speed,
        options.seed,
        {"retail": options.retail_agents, PREMIUM: options.premium_agents},
    )
    logger.info(
        "demo: %d callers from %s, %g minutes at %gx",
        len(workload.calls),
        workload.start_local.isoformat(timespec="minutes"),
        options.minutes,
        options.speed,
    )
    config = demo_config(
        config,
        folder,
        options.db_path,
        ray_folder,
        common_prior(workload.forecasts),
    )
    stack = DemoStack(config, folder)
    tally = Tally(workload, config.prediction.keep_window_s, DIAL_LEAD_S)
    numbers = workload.numbers
    vip = set(workload.vip_customers)

    desk_holder: dict = {}

    def directory(number: str) -> tuple[str, str, bool, int]:
        call = numbers.get(number)
        if call is None:
            raise CallsureError(f"unknown calling number {mask_number(number)}")
        ahead = desk_holder["desk"].position(number)
        return call.customer_id, call.group, call.customer_id in vip, ahead

    # Threads started so far. They are stopped before the stack closes, also
    # when a signal ends the run, because otherwise they keep using the
    # phones and the gRPC channel that the stack is closing.
    started: list = []
    try:
        stack.start_server()
        cti = CtiSender(stack.channel)
        started.append(cti)
        _configure_server(stack, workload, options.speed)
        stack.register_relay(DIALER_NAME)

        customers = stack.start_phones(
            "customers",
            workload.answers,
            {"action": "reject", "code": 404},
            tally.on_customer_phone_event,
        )
        agents = stack.start_phones(
            "agents",
            {},
            {"action": "answer", "delay_s": 0.5},
            lambda event: _on_agent_phone_event(event, desk_holder),
        )
        callers = [
            stack.start_phones(
                f"callers-{index}",
                {},
                {"action": "reject", "code": 404},
                tally.on_caller_phone_event,
            )
            for index in range(CALLER_BANKS)
        ]
        outcomes: queue.Queue = queue.Queue()
        backend = GrpcIvrBackend(
            stack.channel,
            directory,
            config.prediction.zone,
            on_promise=lambda number, mode, callback: (
                tally.on_promise(number, mode, callback),
                desk_holder["desk"].on_promise(number),
            ),
        )

        def on_gateway_event(kind: str, payload: dict) -> None:
            tally.on_gateway_event(kind, payload)
            if kind == "call.ended" and "attempt_id" in payload:
                workers_holder["workers"].on_call_ended(payload["attempt_id"])

        workers_holder: dict = {}
        gateway = stack.start_gateway(
            gateway_settings(config, customers.address, agents.address, options.speed),
            lambda report: outcomes.put(report),
            on_gateway_event,
            backend,
        )
        ivr = IvrDialer(callers, gateway.sip_addresses, config.prediction.zone, tally)
        ivr.seed(options.seed)
        desk = Desk(
            workload, cti.agent_state, ivr.dial, tally.callbacks_waiting, cti.contact
        )
        desk_holder["desk"] = desk
        tally.desk = desk
        ivr.on_ended = desk.on_ivr_ended

        workers = Workers(stack, gateway, outcomes, tally)
        workers_holder["workers"] = workers
        started.extend((workers, desk))
        workers.start()
        for agent_id in desk.agents:
            cti.agent_state(agent_id, busy=False)
        desk.start()
        view.start(tally)
        _wait_until_done(desk, tally, workload, options.drain_s)
        view.stop()
        desk.stop()
        workers.stop()
        cti.stop()
        report = tally.report(
            command_options=options, elapsed_s=desk.elapsed_s, server=stack.address
        )
    finally:
        view.stop()
        # Desk, workers, CTI: the order of the normal stop above.
        for part in reversed(started):
            try:
                part.stop()
            except Exception:  # noqa: BLE001 - the stack must still close
                logger.exception("demo: stopping %s failed", type(part).__name__)
        stack.close()
    return report


def _wait_until_done(desk, tally, workload, drain_s: float) -> None:
    """Wait for the last arrival, then until callbacks are final or drain ends."""
    while not desk.arrivals_done:
        time.sleep(0.2)
    end_of_traffic = time.monotonic()
    while time.monotonic() - end_of_traffic < drain_s:
        if tally.open_promises() == 0 and not tally.ivr_in_progress():
            break
        time.sleep(0.5)


def _on_agent_phone_event(event: dict, desk_holder: dict) -> None:
    desk = desk_holder.get("desk")
    if desk is None:
        return
    if event["ev"] == "incoming":
        attempt_id = event.get("headers", {}).get(ATTEMPT_ID_HEADER, "")
        desk.on_agent_leg(event["call"], event["user"], attempt_id)
    elif event["ev"] == "state" and event["state"] == "DISCONNECTED":
        desk.on_agent_leg_ended(event["call"])


def _configure_server(stack, workload: DemoWorkload, speed: float) -> None:
    """Agents, the VIP's dedicated customers and a compressed retry ladder."""
    from callsure.v1 import admin_pb2, admin_pb2_grpc, agent_pb2, agent_pb2_grpc

    stack.ensure_pools(workload.agents)
    agents = agent_pb2_grpc.AgentServiceStub(stack.channel)
    for group, agent_ids in workload.agents.items():
        for agent_id in agent_ids:
            dedicated = workload.vip_customers if agent_id == VIP_AGENT else []
            agents.UpdateAgent(
                agent_pb2.UpdateAgentRequest(
                    agent=agent_pb2.Agent(
                        name=f"agents/{agent_id}",
                        group=group,
                        dedicated_customer_ids=dedicated,
                    ),
                    allow_missing=True,
                ),
                timeout=10,
            )
    admin = admin_pb2_grpc.AdminServiceStub(stack.channel)
    rules = []
    for outcome, retries, delay_s in retry_ladder(speed):
        rule = admin_pb2.RetryRule(outcome=outcome, max_retries=retries)
        rule.delays.append(Duration(seconds=int(delay_s)))
        rules.append(rule)
    admin.UpdateRetryPolicy(
        admin_pb2.UpdateRetryPolicyRequest(max_attempts=3, rules=rules), timeout=10
    )


def retry_ladder(speed: float) -> list[tuple[int, int, float]]:
    """Divide the engine's default retry delays by ``speed``, keeping 5-20 s."""
    from callsure.v1 import callback_pb2

    defaults = (
        (callback_pb2.CALL_OUTCOME_BUSY, 2, 120.0),
        (callback_pb2.CALL_OUTCOME_NO_ANSWER, 1, 600.0),
        (callback_pb2.CALL_OUTCOME_MACHINE, 1, 900.0),
        (callback_pb2.CALL_OUTCOME_SIT, 1, 600.0),
        (callback_pb2.CALL_OUTCOME_SILENCE, 1, 300.0),
        (callback_pb2.CALL_OUTCOME_CUSTOMER_HUNG_UP, 1, 300.0),
        (callback_pb2.CALL_OUTCOME_NETWORK_FAILURE, 2, 60.0),
    )
    return [
        (outcome, retries, min(20.0, max(5.0, delay / speed)))
        for outcome, retries, delay in defaults
    ]
