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

logger = logging.getLogger(__name__)

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402 - the environment variable above must come first

from callsure.actors.logsetup import configure_logging  # noqa: E402
from callsure.engine.exceptions import CallsureError  # noqa: E402

GCS_PORT_WAIT_S = "60"


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
    ray.init(**options)
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
