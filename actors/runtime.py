"""Start or join the Ray runtime, kept on loopback unless configured.

Ray listens on every interface and advertises the machine's external
address by default. ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` must be in the
environment before ``ray`` is imported, and ``_node_ip_address`` must be
given to ``ray.init``, for a local Ray to stay on 127.0.0.1; either alone
is not enough (measured with Ray 2.60).
"""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger(__name__)

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402 - the environment variable above must come first

from callsure.actors.logsetup import configure_logging  # noqa: E402
from callsure.engine.exceptions import CallsureError  # noqa: E402

GCS_PORT_WAIT_S = "60"

# Warnings that ray.init prints on every start and that do not apply here,
# by logger. `callsure serve` calls ray.init from a thread on purpose so
# that its own SIGTERM handler stays in force, and token authentication,
# which Ray enables by default for a local cluster, is what callsure wants.
_EXPECTED_RAY_NOTICES = {
    "ray._private.worker": "SIGTERM handler is not set because current thread",
    "ray._private.authentication.authentication_token_setup": (
        "Token authentication is enabled for this Ray cluster"
    ),
}


class _DropNotice(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


for _name, _prefix in _EXPECTED_RAY_NOTICES.items():
    logging.getLogger(_name).addFilter(_DropNotice(_prefix))


def start_ray(ray_config, address: str | None = None, log_config=None) -> None:
    """Start a local Ray, or join the cluster at ``address``.

    Parameters
    ----------
    ray_config : SectionValues
        The ``[ray]`` section: ``address``, ``node_ip_address``,
        ``num_cpus``, ``namespace``, ``temp_dir``.
    address : str, optional
        Overrides ``ray_config.address``; empty or ``None`` starts a local
        Ray.
    log_config : SectionValues, optional
        The ``[log]`` section; the actors' worker processes log the same
        way as this process.
    """
    address = address or ray_config.address
    # Ray colours the "(Actor pid=...)" prefix of the actors' log lines; in
    # a log file or journal those escape codes are noise.
    if not sys.stderr.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    options = {
        "namespace": ray_config.namespace,
        "include_dashboard": False,
        "_node_ip_address": ray_config.node_ip_address,
        "log_to_driver": True,
        # callsure configures logging in its entry points only.
        "configure_logging": False,
    }
    if log_config is not None:
        hook = _logging_hook(log_config.level, log_config.format)
        options["runtime_env"] = {"worker_process_setup_hook": hook}
    if address:
        logger.info("joining Ray cluster at %s", address)
        ray.init(address=address, **options)
        return
    # Ray starts workers at nice 15 by default; the coordinator serves
    # every CreateCallback, so it must not yield the CPU to batch jobs.
    os.environ.setdefault("RAY_worker_niceness", "0")
    # Ray waits 30 s by default for the GCS to write its port file, and a
    # test run on a busy two-core node has exceeded that wait.
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", GCS_PORT_WAIT_S)
    if ray_config.num_cpus:
        options["num_cpus"] = ray_config.num_cpus
    if ray_config.temp_dir:
        options["_temp_dir"] = os.path.abspath(ray_config.temp_dir)
    logger.info(
        "starting a local Ray on %s (namespace %s)",
        ray_config.node_ip_address,
        ray_config.namespace,
    )
    try:
        ray.init(**options)
    except Exception as error:  # Ray raises a bare Exception here
        if "timed out during startup" not in str(error):
            raise
        # Ray waits a fixed 30 s for its raylet to register with the GCS.
        raise CallsureError(
            "the local Ray did not start: its raylet did not register within "
            "Ray's 30 s, which happens when the machine is overloaded; start "
            "again when the load is lower, or join a running cluster with "
            "ray.address"
        ) from None
    check_gcs_host(ray.get_runtime_context().gcs_address, ray_config.node_ip_address)


def check_gcs_host(gcs_address: str, node_ip_address: str) -> None:
    """Stop a local Ray whose GCS listens elsewhere than ``node_ip_address``.

    That happens when ``ray`` was imported before this package set
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, or the environment set it to
    another value: the GCS then listens on the machine's external address.
    """
    problem = gcs_host_problem(gcs_address, node_ip_address)
    if problem:
        ray.shutdown()
        raise CallsureError(problem)


def gcs_host_problem(gcs_address: str, node_ip_address: str) -> str | None:
    """Return the error for a GCS listening off ``node_ip_address``, or None."""
    host = gcs_address.rpartition(":")[0].strip("[]")
    if host == node_ip_address:
        return None
    return (
        f"the local Ray listened on {host}, not on ray.node_ip_address "
        f"{node_ip_address}, so it was stopped: set "
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 in the environment, or import "
        "callsure.actors before ray"
    )


def _logging_hook(level: str, fmt: str):
    def setup_worker_logging() -> None:
        configure_logging(level, fmt)

    return setup_worker_logging


def stop_ray() -> None:
    """Disconnect from Ray; a local Ray started by ``start_ray`` stops."""
    if ray.is_initialized():
        ray.shutdown()
        logger.info("Ray stopped")
