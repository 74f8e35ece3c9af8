"""The demo's stop signals: its handlers survive a real local Ray start, and
the first signal makes later ones wait for the orderly stop."""

from __future__ import annotations

import shutil
import signal

import pytest
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
    previous_interrupt = signal.signal(signal.SIGINT, _interrupt)
    try:
        with keep_sigterm_handler():
            start_ray(config.ray)
            during_start = signal.getsignal(signal.SIGTERM)
        assert during_start is not _interrupt, "ray.init kept the handler"
        assert signal.getsignal(signal.SIGTERM) is _interrupt
        assert signal.getsignal(signal.SIGINT) is _interrupt
    finally:
        stop_ray()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_interrupt)
        shutil.rmtree(folder, ignore_errors=True)


def test_first_stop_signal_ignores_the_next():
    previous = signal.signal(signal.SIGTERM, _interrupt)
    previous_interrupt = signal.signal(signal.SIGINT, _interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            _interrupt(signal.SIGINT, None)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_interrupt)
