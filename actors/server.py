"""The gRPC server: services, health, reflection, TLS and the token check.

``build_server`` returns the server and the port it bound, so tests and
``callsure serve`` can ask for port 0. The servicers hold Ray actor
handles and turn each RPC into actor messages; they keep no domain state.
"""

from __future__ import annotations

import errno
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from callsure.actors.auth import BearerTokenInterceptor
from callsure.actors.services.callbacks import add_callback_service
from callsure.engine.exceptions import ConfigError
from callsure.engine.settings import is_loopback
from callsure.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    callback_pb2,
    campaign_pb2,
    campaign_pb2_grpc,
    contact_pb2,
    contact_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
    prediction_pb2,
    prediction_pb2_grpc,
)

logger = logging.getLogger(__name__)

SERVICE_NAMES = (
    callback_pb2.DESCRIPTOR.services_by_name["CallbackService"].full_name,
    prediction_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name,
    contact_pb2.DESCRIPTOR.services_by_name["ContactService"].full_name,
    agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    event_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
    campaign_pb2.DESCRIPTOR.services_by_name["CampaignService"].full_name,
)

# Unary messages stay small; 4 MiB is gRPC's own default, kept explicit.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass
class RunningServer:
    """A started server, its bound address and its health servicer."""

    server: grpc.aio.Server
    address: str
    health: health.aio.HealthServicer

    async def stop(self, grace_s: float) -> None:
        """Stop accepting calls, let accepted calls finish for ``grace_s``."""
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace_s)


def check_listen_address(address: str, allow_non_loopback: bool) -> None:
    """Raise ``ConfigError`` for a non-loopback address that is not allowed."""
    if not allow_non_loopback and not is_loopback(address):
        raise ConfigError(
            "server.grpc_address",
            address,
            "a loopback address such as 127.0.0.1:50051, or set "
            "server.allow_non_loopback = true to listen beyond this machine",
        )


def _server_credentials(server_config) -> grpc.ServerCredentials | None:
    cert_file, key_file = server_config.tls_cert_file, server_config.tls_key_file
    if not cert_file and not key_file:
        return None
    if not cert_file or not key_file:
        raise ConfigError(
            "server.tls_cert_file",
            cert_file or "",
            "set both server.tls_cert_file and server.tls_key_file, or neither",
        )
    try:
        chain = Path(cert_file).read_bytes()
        key = Path(key_file).read_bytes()
    except OSError as exc:
        raise ConfigError(
            "server.tls_cert_file", cert_file, f"a readable PEM file ({exc})"
        ) from None
    return grpc.ssl_server_credentials([(key, chain)])


async def start_server(server_config, servicers) -> RunningServer:
    """Build, bind and start the server.

    Parameters
    ----------
    server_config : SectionValues
        The ``[server]`` section.
    servicers : Servicers
        One servicer per service of the API.

    Raises
    ------
    ConfigError
        For a non-loopback address that is not allowed, half a TLS
        configuration, or an address that cannot be bound.
    """
    address = server_config.grpc_address
    check_listen_address(address, server_config.allow_non_loopback)
    interceptors = []
    if server_config.token:
        interceptors.append(BearerTokenInterceptor(server_config.token))
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )

    add_callback_service(servicers.callback, server)
    prediction_pb2_grpc.add_PredictionServiceServicer_to_server(
        servicers.prediction, server
    )
    contact_pb2_grpc.add_ContactServiceServicer_to_server(servicers.contact, server)
    agent_pb2_grpc.add_AgentServiceServicer_to_server(servicers.agent, server)
    admin_pb2_grpc.add_AdminServiceServicer_to_server(servicers.admin, server)
    event_pb2_grpc.add_EventServiceServicer_to_server(servicers.event, server)
    campaign_pb2_grpc.add_CampaignServiceServicer_to_server(servicers.campaign, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )

    credentials = _server_credentials(server_config)
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:
        problem = bind_problem(address) or "an address gRPC can listen on"
        raise ConfigError("server.grpc_address", address, problem) from None
    await server.start()

    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    host = address.rpartition(":")[0]
    return RunningServer(server, f"{host}:{port}", health_servicer)


# The fix for a failed gRPC bind, by the errno of a plain socket bind to
# the same address.
BIND_FIXES = {
    errno.EADDRINUSE: "a free port: another process listens on this one, so "
    "stop it or choose another port (port 0 picks a free one)",
    errno.EACCES: "a port above 1023: lower ports need root",
    errno.EADDRNOTAVAIL: "an address of one of this machine's interfaces",
}


def bind_problem(address: str) -> str | None:
    """Describe the value ``server.grpc_address`` needs, or None if it binds.

    grpcio reports only that binding failed, so the same address is bound
    with a plain socket, with SO_REUSEADDR as gRPC sets it, to find the
    errno.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, int(port)))
    except (OSError, ValueError) as exc:
        fix = BIND_FIXES.get(getattr(exc, "errno", None))
        return fix or f"an address this machine can listen on ({exc})"
    return None
