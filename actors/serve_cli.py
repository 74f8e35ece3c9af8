"""``callsure serve``: Ray, the actors and the gRPC API in one process.

Start-up: check the Ray address to join, the listen address, the TLS
files, the SIP codecs and IVR scenario and the storage path, start or
join Ray, create (or find) the actors, start the SIP gateway when
``[sip] enabled`` is true, serve gRPC, then print one line
``callsure serving gRPC on HOST:PORT`` on standard output, which scripts
and tests parse for the bound port. On
SIGTERM or SIGINT the server stops accepting calls, lets accepted calls
finish (up to ``STOP_GRACE_S``), stops the SIP gateway's endpoint
processes, stops Ray if it started it, and exits with status 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sqlite3
import ssl
import sys
import tempfile
import time
from pathlib import Path

import click

from callsure.actors.errors import unwrap
from callsure.actors.logsetup import configure_logging
from callsure.engine.config import load_config
from callsure.engine.exceptions import CallsureError, ConfigError, StorageError
from callsure.engine.settings import is_loopback
from callsure.engine.store.files import SERVE_PID_ENV, WriterLock

logger = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
# How long a starting server waits for the store's writer lock. The Ray
# workers of a server killed with SIGKILL hold it until Ray ends them.
LOCK_WAIT_S = 15.0
LOCK_RETRY_S = 0.5
# The wait is logged when it starts, then at most this often.
LOCK_LOG_EVERY_S = 5.0
READY_PREFIX = "callsure serving gRPC on "
# How long serve tries to open a TCP connection to a Ray cluster to join.
# ray.init itself retried an unreachable address for more than 150 s, and
# has no timeout argument (Ray 2.60).
RAY_CONNECT_TIMEOUT_S = 5.0
# Forms of a Ray address that ray.init accepts besides HOST:PORT.
RAY_ADDRESS_WORDS = ("auto", "local")
RAY_CLIENT_SCHEME = "ray://"
RAY_ADDRESS_FORMS = "HOST:PORT, ray://HOST:PORT, auto or local"
# Codecs the SIP gateway may offer. The endpoint processes enable the
# configured names (any letter case) and disable every other PJSIP codec,
# so a name PJSIP does not know would be dropped silently. Only G.711 is
# allowed, because the call-progress analyser was tuned for G.711 audio.
SIP_CODECS = ("PCMU/8000", "PCMA/8000")


async def run_server(config, ray_address: str | None) -> None:
    """Serve until SIGTERM or SIGINT; see the module docstring."""
    from callsure.actors.deploy import deploy_actors
    from callsure.actors.runtime import start_ray, stop_ray
    from callsure.actors.server import start_server
    from callsure.actors.services import build_servicers
    from callsure.actors.sip.serving import start_gateway, stop_gateway

    check_config(config)
    # A server that joins a cluster (ray.address, --ray-address, or
    # RAY_ADDRESS, which ray.init reads) may find the detached coordinator
    # running and owning the store's lock, which is no conflict.
    joining = bool(ray_address or config.ray.address or os.environ.get("RAY_ADDRESS"))
    check_storage_path(config.storage.path, check_lock=not joining)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()

    # A local Ray's workers inherit this environment, so the lock file of
    # the store that the coordinator opens names this process too.
    os.environ[SERVE_PID_ENV] = str(os.getpid())
    await asyncio.to_thread(start_ray, config.ray, ray_address, config.log)
    gateway = None
    try:
        # ray.init replaces the SIGTERM handler when it runs on the main
        # thread; it ran on a worker thread, and ours go in afterwards anyway.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _request_stop, stop_requested, signum)
        actors = await deploy_actors(config)
        gateway = await start_gateway(config)
        running = await start_server(config.server, build_servicers(actors))
        logger.info(
            "serving gRPC on %s (TLS %s, token %s)",
            running.address,
            "on" if config.server.tls_cert_file else "off",
            "required" if config.server.token else "not required",
        )
        print(READY_PREFIX + running.address, flush=True)

        await stop_requested.wait()
        logger.info("stopping: no new calls, finishing accepted calls")
        await running.stop(STOP_GRACE_S)
        await actors.close()
    finally:
        # The endpoint processes outlive Ray unless the gateway stops them.
        await stop_gateway(gateway)
        await asyncio.to_thread(stop_ray)
    logger.info("stopped")


def ray_address_problem(address: str) -> str | None:
    """Return what is wrong with the form of a Ray address, or None.

    ``ray.init`` accepts HOST:PORT (the cluster's GCS), ray://HOST:PORT
    (Ray Client), ``auto`` and ``local``, and raises a bare ValueError on
    anything else.
    """
    if address in RAY_ADDRESS_WORDS:
        return None
    host, port = _host_and_port(address)
    valid_host = host and not any(c.isspace() or c in "/@" for c in host)
    if not valid_host or not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"{RAY_ADDRESS_FORMS}, such as 127.0.0.1:6379"
    return None


def _host_and_port(address: str) -> tuple[str, str]:
    """Split HOST:PORT or ray://HOST:PORT; an IPv6 host loses its brackets."""
    host, _, port = address.removeprefix(RAY_CLIENT_SCHEME).rpartition(":")
    return host.removeprefix("[").removesuffix("]"), port


def check_ray_address(address: str, name: str) -> None:
    """Raise a click error unless a Ray cluster may listen at ``address``.

    ``name`` is the option, setting or variable the address came from. The
    form is checked first, then HOST:PORT must accept a TCP connection
    within ``RAY_CONNECT_TIMEOUT_S``, because ``ray.init`` retries an
    unreachable address for minutes.
    """
    problem = ray_address_problem(address)
    if problem:
        hint = f"'{name}'" if name.startswith("--") else name
        raise click.BadParameter(
            f"{address!r} is not a Ray address: use {problem}", param_hint=hint
        )
    if address in RAY_ADDRESS_WORDS:
        return
    host, port = _host_and_port(address)
    try:
        with socket.create_connection((host, int(port)), RAY_CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        reason = error.strerror or "timed out"
        raise click.ClickException(
            f"cannot connect to the Ray cluster at {address} ({name}): {reason}. "
            "Start the cluster or fix the address"
        ) from None
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        # NOTE: a cluster with TLS is not probed further, so a port that is
        # not Ray still makes ray.init wait for minutes.
        return
    if not _speaks_grpc(host, int(port)):
        raise click.ClickException(
            f"the Ray cluster at {address} ({name}) accepts connections but "
            f"completed no gRPC handshake within {RAY_CONNECT_TIMEOUT_S:.0f} s, "
            "so it is not a Ray GCS or Ray Client port. Use the address that "
            "`ray start --head` printed"
        )


def _speaks_grpc(host: str, port: int) -> bool:
    """Return True when ``host:port`` completes an HTTP/2 handshake.

    The GCS and the Ray Client server are gRPC servers, while ``ray.init``
    retries for minutes on a port that accepts connections and then sends
    nothing, or replies in another protocol.
    """
    import grpc

    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    channel = grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=RAY_CONNECT_TIMEOUT_S)
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()
    return True


def check_config(config, probe_bind: bool = True) -> None:
    """Check the listen, Ray and SIP addresses, the TLS files and, with the
    SIP gateway enabled, its codecs, prompt folder and IVR scenario.

    With ``probe_bind``, the gRPC address is bound once with a plain
    socket, so a port in use is reported at once (another process can
    still take it before gRPC binds it).

    Serve runs this before Ray starts, because a local Ray took 17 to 37 s
    to start on two shared cores, and a bad setting found later wastes it.

    Raises
    ------
    ConfigError
        Naming the setting, its value and what it expects.
    """
    from callsure.actors.server import bind_problem, check_listen_address

    address = config.server.grpc_address
    check_listen_address(address, config.server.allow_non_loopback)
    problem = bind_problem(address) if probe_bind else None
    if problem:
        raise ConfigError("server.grpc_address", address, problem)
    check_bind_addresses(config)
    problem = ray_address_problem(config.ray.address) if config.ray.address else None
    if problem:
        raise ConfigError("ray.address", config.ray.address, problem)
    check_tls_files(config.server)
    if config.sip.enabled:
        check_sip_codecs(config.sip.codecs)
        check_sip_scenario(config.sip)


def check_sip_codecs(codecs) -> None:
    """Raise ``ConfigError`` unless ``sip.codecs`` names gateway codecs only."""
    supported = {name.lower() for name in SIP_CODECS}
    expected = f"codec names from {', '.join(SIP_CODECS)}, most preferred first"
    if not codecs:
        raise ConfigError("sip.codecs", list(codecs), expected)
    for name in codecs:
        if str(name).lower() not in supported:
            raise ConfigError("sip.codecs", name, expected)


def check_sip_scenario(sip_config) -> None:
    """Raise ``ConfigError`` unless the IVR scenario loads as the gateway loads it.

    The prompt folder is checked too, and every prompt the scenario plays
    must be in it.
    """
    from callsure.actors.sip.prompts import PromptLibrary
    from callsure.actors.sip.scenario import ScenarioError, load_scenario

    prompts = PromptLibrary(sip_config.prompts_dir or None)
    try:
        load_scenario(sip_config.scenario or None, prompts)
    except ScenarioError as error:
        raise ConfigError(
            "sip.scenario",
            sip_config.scenario,
            f"a valid IVR scenario ({error}); check it with `callsure scenario check`",
        ) from None


def check_tls_files(server_config) -> None:
    """Raise ``ConfigError`` unless the TLS settings make a usable server key.

    Both ``tls_cert_file`` and ``tls_key_file`` are set or neither, both
    are readable, the first contains a PEM certificate and the second the
    unencrypted PEM private key of that certificate.
    """
    cert_file, key_file = server_config.tls_cert_file, server_config.tls_key_file
    if not cert_file and not key_file:
        return
    both = (
        "a PEM file: set both server.tls_cert_file and server.tls_key_file, or neither"
    )
    if not key_file:
        raise ConfigError("server.tls_key_file", "", both)
    if not cert_file:
        raise ConfigError("server.tls_cert_file", "", both)
    for key, path in (
        ("server.tls_cert_file", cert_file),
        ("server.tls_key_file", key_file),
    ):
        try:
            with open(path, "rb"):
                pass
        except OSError as error:
            raise ConfigError(
                key, path, f"a readable PEM file ({error.strerror})"
            ) from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert_file)
    except ssl.SSLError as error:
        raise ConfigError(
            "server.tls_cert_file",
            cert_file,
            f"a PEM certificate chain ({error.reason or error.strerror})",
        ) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # An encrypted key gets an empty password instead of a prompt,
        # because grpc.ssl_server_credentials takes no password either.
        context.load_cert_chain(cert_file, key_file, password=lambda: b"")
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            expected = (
                f"the private key of the certificate in {cert_file} "
                "(this key belongs to another certificate)"
            )
        else:
            expected = "an unencrypted PEM private key"
        raise ConfigError("server.tls_key_file", key_file, expected) from None


def check_bind_addresses(config) -> None:
    """Raise ``ConfigError`` for a non-loopback Ray or SIP address not allowed.

    The same rule as for the gRPC address: listening beyond this machine
    needs ``server.allow_non_loopback = true``.
    """
    if config.server.allow_non_loopback:
        return
    addresses = [("ray.node_ip_address", config.ray.node_ip_address)]
    if config.sip.enabled:
        addresses.append(("sip.bind_address", config.sip.bind_address))
    for key, address in addresses:
        if not is_loopback(address):
            raise ConfigError(
                key,
                address,
                "a loopback address such as 127.0.0.1, or set "
                "server.allow_non_loopback = true to listen beyond this machine",
            )


def check_storage_path(
    path: str, *, check_lock: bool = True, create_folder: bool = True
) -> None:
    """Check before Ray starts that the store at ``path`` can be opened.

    The folder must be creatable and writable, no other process may hold
    the store's writer lock (``<path>.lock``), and a file already there
    must open as SQLite. Without this check the coordinator actor fails
    inside Ray, once Ray has started, with a long traceback instead of one
    line naming the path.

    Parameters
    ----------
    path : str
        The ``storage.path`` setting.
    check_lock : bool
        Take and release the writer lock. Pass false when joining a Ray
        cluster, whose running coordinator may hold the lock.
    create_folder : bool
        Create the store's folder as serve does. When false, the nearest
        existing folder above the store must be writable instead.

    Raises
    ------
    StorageError
        Naming the path and what to change, or the process id of the
        lock's holder.
    """
    store = Path(path).expanduser().resolve()
    fix = "set storage.path (CALLSURE_STORAGE__PATH) to a file in a writable folder"
    folder = store.parent
    try:
        if create_folder:
            # The same folder creation as the deployment does afterwards.
            folder.mkdir(parents=True, exist_ok=True)
        else:
            while not folder.exists() and folder != folder.parent:
                folder = folder.parent
        # A real file rather than os.access, because os.access returns true
        # for root even on read-only file systems such as /proc.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise StorageError(
            f"cannot create a file in the store folder {folder} "
            f"({error.strerror}); {fix}"
        ) from None
    if check_lock:
        # The coordinator takes the lock again when it opens the store.
        _wait_for_writer_lock(store)
    if not store.exists():
        return
    if not store.is_file():
        raise StorageError(f"store path {store} is not a file; {fix}")
    if not os.access(store, os.R_OK | os.W_OK):
        raise StorageError(f"cannot read and write the store {store}; {fix}")
    try:
        db = sqlite3.connect(f"file:{store}?mode=rw", uri=True)
        try:
            db.execute("PRAGMA user_version").fetchone()
        finally:
            db.close()
    except sqlite3.Error as error:
        raise StorageError(
            f"cannot open the store {store}: {error}; move the file away or "
            "set storage.path to a callsure SQLite database"
        ) from None


def _request_stop(event: asyncio.Event, signum: int) -> None:
    logger.info("received %s", signal.Signals(signum).name)
    event.set()


@click.command("serve")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True),
    help="TOML configuration file; replaces the one given before `serve`.",
)
@click.option(
    "--ray-address",
    help=f"Address of a Ray cluster to join (ray.address): {RAY_ADDRESS_FORMS}. "
    "Default: start a local Ray on 127.0.0.1.",
)
@click.pass_obj
def serve(config, config_path, ray_address):
    """Serve the gRPC API with the engine's actors on a local or joined Ray."""
    if config_path:
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
        configure_logging(config.log.level, config.log.format)
    for address, name in (
        (ray_address, "--ray-address"),
        (config.ray.address, "ray.address"),
        (os.environ.get("RAY_ADDRESS"), "RAY_ADDRESS"),
    ):
        # The first one given is the one ray.init uses.
        if address:
            check_ray_address(address, name)
            break
    try:
        asyncio.run(run_server(config, ray_address))
    except ConfigError as exc:
        logger.error("%s", exc)
        raise click.UsageError(str(exc)) from None
    except Exception as exc:
        # A store or gateway failure arrives wrapped in a Ray error. Ray is
        # stopped already (run_server's finally), so one line is enough.
        cause = unwrap(exc)
        if not isinstance(cause, CallsureError):
            raise
        click.echo(f"Error: {cause}", err=True)
        sys.exit(1)
    sys.exit(0)


def _wait_for_writer_lock(store, wait_s: float = LOCK_WAIT_S) -> None:
    """Take and release the store's writer lock, waiting up to ``wait_s``."""
    started = time.monotonic()
    deadline = started + wait_s
    next_log = started
    while True:
        try:
            WriterLock(str(store)).release()
            return
        except StorageError as exc:
            now = time.monotonic()
            if now >= deadline:
                raise
            if now >= next_log:
                logger.info(
                    "waiting up to %.0f s for the store's writer lock: %s",
                    deadline - now,
                    exc,
                )
                next_log = now + LOCK_LOG_EVERY_S
            time.sleep(LOCK_RETRY_S)
