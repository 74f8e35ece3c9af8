"""Call-progress verdicts through the SIP gateway against the same files read offline.

Each recording of the surge demo is played by a pjsua2 phone answering a
callback placed by the real gateway on 127.0.0.1. The gateway's verdict
must be the one ``callsure amd`` gives the file, and the audio its
analyser received (written by the endpoint processes to the folder named
by ``CALLSURE_SIP_TAP_DUMP_DIR``) must be the file, moved by whole frames
at most.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest
from test_sip_gateway import Reports, make_order

from callsure.actors.amd_cli import analyse_file
from callsure.actors.demo.workload import DEFAULT_RECORDINGS
from callsure.actors.sip.gateway import CallGateway, GatewaySettings
from callsure.actors.sip.phones import PhoneBank
from callsure.actors.sip.worker import (
    SAMPLE_RATE_HZ,
    SAMPLES_PER_FRAME,
    TAP_DUMP_ENV,
)
from callsure.dsp import StreamAnalyzer, read_wav

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

with (DEFAULT_RECORDINGS / "labels.csv").open(newline="") as _labels:
    LABELS = {row["file"]: row["label"] for row in csv.DictReader(_labels)}
SPEECH_FILES = sorted(f for f, label in LABELS.items() if label in ("HUMAN", "MACHINE"))

# A phone process holds 4 calls (the pjsua2 wheel's limit), and each
# callback to a person also sends the agent leg's INVITE to that process.
CALLS_PER_BATCH = 3
# Alignment is searched from one frame early to three frames late, in
# windows of 100 ms, where the file is louder than its line noise.
MIN_LAG = -SAMPLES_PER_FRAME
MAX_LAG = 3 * SAMPLES_PER_FRAME
WINDOW = 5 * SAMPLES_PER_FRAME
BLOCK = SAMPLE_RATE_HZ // 100
LOUD_RMS = 300.0


def _read_when_written(path: Path, timeout_s: float = 15.0) -> np.ndarray:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the endpoint wrote no analysed audio to {path}")
        time.sleep(0.05)
    return read_wav(path).samples


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """Return recording name -> (gateway report, analysed samples)."""
    dump_dir = tmp_path_factory.mktemp("analysed")
    numbers = {f"+1555010{i:04d}": name for i, name in enumerate(sorted(LABELS))}
    behaviours = {
        number: {
            "action": "answer",
            "delay_s": 0.3,
            "play": str(DEFAULT_RECORDINGS / name),
            "hangup_after_s": 10.0,
        }
        for number, name in numbers.items()
    }
    reports = Reports()
    results = {}
    with (
        pytest.MonkeyPatch.context() as patch,
        PhoneBank(behaviours, name="customers") as phones,
    ):
        # The endpoint processes inherit the variable when they start.
        patch.setenv(TAP_DUMP_ENV, str(dump_dir))
        settings = GatewaySettings(
            endpoint_processes=2,
            customer_uri_template=phones.uri_template("number"),
            # No agent number exists, so the agent leg fails with 404: only
            # the verdict matters here.
            agent_uri_template=phones.uri_template("agent"),
            ring_timeout_s=10.0,
        )
        with CallGateway(settings, reports.on_outcome, reports.on_event) as gateway:
            pending = list(numbers.items())
            while pending:
                batch, pending = pending[:CALLS_PER_BATCH], pending[CALLS_PER_BATCH:]
                orders = []
                for number, name in batch:
                    order = make_order(number)
                    gateway.dial(order)
                    orders.append((number, name, order))
                for number, name, order in orders:
                    report = reports.wait(order.attempt_id, timeout_s=30.0)
                    key = order.attempt_id.replace("/", "_") + "_customer"
                    samples = _read_when_written(dump_dir / f"{key}.wav")
                    results[name] = (report, samples)
                    phones.wait_for(
                        lambda e, n=number: (
                            e["ev"] == "state"
                            and e["user"] == n
                            and e["state"] == "DISCONNECTED"
                        ),
                        timeout_s=15.0,
                    )
    return results


def align_windows(
    reference: np.ndarray, analysed: np.ndarray
) -> list[tuple[int, int, float]]:
    """Align each loud window of ``reference`` with ``analysed``.

    Returns ``(start, lag, correlation)`` per window of ``WINDOW`` samples
    whose RMS is above ``LOUD_RMS``: the lag in samples (``analysed``
    behind ``reference``) from ``MIN_LAG`` to ``MAX_LAG`` with the highest
    normalised correlation, and that correlation.
    """
    reference = reference.astype(np.float64)
    analysed = analysed.astype(np.float64)
    windows = []
    for start in range(0, reference.size - WINDOW + 1, WINDOW):
        window = reference[start : start + WINDOW]
        energy = np.dot(window, window)
        if energy < WINDOW * LOUD_RMS**2:
            continue
        first = start + MIN_LAG
        last = start + MAX_LAG + WINDOW
        if first < 0 or last > analysed.size:
            continue
        region = analysed[first:last]
        dots = np.correlate(region, window, mode="valid")
        squares = np.concatenate([[0.0], np.cumsum(region**2)])
        region_energy = squares[WINDOW:] - squares[:-WINDOW]
        correlations = dots / np.sqrt(np.maximum(region_energy, 1e-9) * energy)
        best = int(np.argmax(correlations))
        windows.append((start, MIN_LAG + best, float(correlations[best])))
    return windows


def describe_verdict(samples: np.ndarray) -> str:
    """Return ``VERDICT cause`` for analysed audio, to explain a mismatch."""
    analyzer = StreamAnalyzer()
    analyzer.feed(samples)
    verdict = analyzer.verdict or analyzer.finish()
    return f"{verdict.kind.name} {verdict.cause.name.lower()}"


@pytest.mark.parametrize("name", sorted(LABELS))
def test_gateway_verdict_matches_offline(played, name):
    expected = analyse_file(str(DEFAULT_RECORDINGS / name))
    report, analysed = played[name]
    offline_analysed = describe_verdict(analysed)
    assert report.verdict == expected["verdict"], (
        f"{name}: gateway {report.verdict} ({report.detail}), offline "
        f"{expected['verdict']} ({expected['cause']}); the analysed audio "
        f"read offline gives {offline_analysed}"
    )


@pytest.mark.parametrize("name", SPEECH_FILES)
def test_analysed_audio_matches_file(played, name):
    reference = read_wav(DEFAULT_RECORDINGS / name).samples
    _, analysed = played[name]
    decided_ms = analyse_file(str(DEFAULT_RECORDINGS / name))["decided_ms"]
    analysed_ms = analysed.size * 1000 // SAMPLE_RATE_HZ
    assert analysed_ms >= decided_ms, (
        f"{name}: {analysed_ms} ms analysed, the offline verdict took {decided_ms} ms"
    )
    windows = align_windows(reference, analysed)
    assert windows, f"{name}: no loud window of the file was analysed"
    # G.711 mu-law keeps a window's correlation near 0.9999. A window
    # holding a frame the jitter buffer filled with silence (a packet
    # late on a loaded machine) falls below 0.99, so a tenth of them may.
    clean = [(start, lag) for start, lag, correlation in windows if correlation > 0.99]
    assert len(clean) >= 0.9 * len(windows), (
        f"{name}: {len(windows) - len(clean)} of {len(windows)} windows differ "
        f"from the file: {windows}"
    )
    for start, lag in clean:
        at = f"{name} at {start / SAMPLE_RATE_HZ:.2f} s"
        # The analyser works in 10 ms blocks (80 samples). Received audio
        # moves by a whole 20 ms frame when the jitter buffer inserts or
        # drops one, and moved by 10 ms once in a full demo run: both keep
        # the blocks. Part of a block moves the audio against them, and
        # 5 ms of delay alone turned a person into a machine.
        assert lag % BLOCK == 0, f"{at}: lag of {lag} samples"
        assert 0 <= lag <= 2 * SAMPLES_PER_FRAME, f"{at}: lag of {lag} samples"
    level_ratio = float(
        np.sqrt(
            np.mean(analysed.astype(np.float64) ** 2)
            / np.mean(reference[: analysed.size].astype(np.float64) ** 2)
        )
    )
    assert 0.9 < level_ratio < 1.1, f"{name}: level ratio {level_ratio:.3f}"
