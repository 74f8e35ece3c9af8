"""The demo's stack keeps its SIGTERM handler across a real local Ray start."""

from __future__ import annotations

import shutil
import signal

from serve_support import private_folder

from callsure.actors.demo.stack import keep_sigterm_handler
from callsure.actors.demo_cli import _interrupt
from callsure.actors.runtime import start_ray, stop_ray
from callsure.engine.config import load_config


def test_sigterm_handler_survives_ray_start():
    # Without keep_sigterm_handler, SIGTERM ran Ray's exit instead of the
    # demo's orderly stop, and Ray's agents were left running.
    folder = private_folder()
    config = load_config(None).replace(
        ray={"temp_dir": str(folder / "ray"), "num_cpus": 1}
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with keep_sigterm_handler():
            start_ray(config.ray)
            during_start = signal.getsignal(signal.SIGTERM)
        assert during_start is not _interrupt, "ray.init kept the handler"
        assert signal.getsignal(signal.SIGTERM) is _interrupt
    finally:
        stop_ray()
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(folder, ignore_errors=True)
