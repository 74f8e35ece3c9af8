"""The SIP call gateway: pjsua2 endpoint processes, call flows and the surge IVR.

Layout, from the wire up:

- ``worker``: one pjsua2 endpoint per process (PJSUA is a process-wide
  singleton, and the PyPI wheel holds 4 calls per endpoint). All pjsua2
  calls run on the process's main thread; media taps copy each received
  frame into a ring that the call-progress batch analyser reads once per
  tick. Its docstring explains the threading model.
- ``wire`` and ``endpoints``: msgpack over a Unix socket pair between the
  gateway and each endpoint process; supervision and restart.
- ``gateway.CallGateway``: places dial orders on endpoints with free
  slots, runs the call flows and IVR sessions on one dispatcher thread,
  reports one ``callflow.CallReport`` per order.
- ``callflow``: dial, classify (HUMAN, MACHINE, SIT, ...), optionally
  confirm by DTMF, bridge to the agent (conference or REFER), with the
  IVR history in ``X-Callsure-Ivr-History``.
- ``ivr``, ``scenario``, ``prompts``, ``backend``: the inbound surge IVR,
  its YAML/JSON scenario, its voice prompts, and a backend over the
  engine's scheduler.
- ``actor.CallGatewayActor``: the gateway as a Ray actor implementing the
  coordinator's ``Dialer`` interface.
- ``phones``: pjsua2 test phones, used by the tests and ``callsure demo``.

Use::

    gateway = CallGateway(GatewaySettings.from_config(config), on_outcome)
    gateway.start()
    gateway.dial(order)          # a callsure.engine.callbacks.DialOrder
    ...                          # on_outcome(CallReport) once per order
    gateway.stop()
"""
