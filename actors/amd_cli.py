"""The ``callsure amd`` command: classify recorded calls.

Prints one JSON object per file, for integrators checking the detector on
their own recordings.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from callsure.dsp import EventKind, StreamAnalyzer, read_wav

logger = logging.getLogger(__name__)


def analyse_file(path: str) -> dict:
    """Return the verdict and events of one WAV file as a JSON-ready dict.

    Raises ``ValueError`` naming the path for a file that cannot be read
    or analysed.
    """
    if Path(path).is_dir():
        raise ValueError(f"{path}: is a folder, not a WAV file")
    try:
        audio = read_wav(path)
    except OSError as error:
        raise ValueError(f"{path}: cannot read the file ({error.strerror})") from None
    # Shorter than one 10 ms frame, a recording ends before the detector
    # hears anything, and SILENCE would read as a measured verdict.
    frame = audio.sample_rate_hz // 100
    if len(audio.samples) < frame:
        raise ValueError(
            f"{path}: contains {len(audio.samples)} samples of audio, less than "
            f"one 10 ms frame ({frame} samples at {audio.sample_rate_hz} Hz); "
            "record at least one frame"
        )
    analyzer = StreamAnalyzer(audio.sample_rate_hz, audio.encoding)
    digits = []
    sit_code = None
    # Feed in one-second chunks, draining between them, so no event is
    # dropped from the analyser's fixed event ring on long recordings.
    chunk = audio.sample_rate_hz
    for start in range(0, len(audio.samples), chunk):
        analyzer.feed(audio.samples[start : start + chunk])
        for event in analyzer.drain_events():
            if event.kind is EventKind.DTMF:
                digits.append(event.digit)
            elif event.kind is EventKind.SIT:
                sit_code = event.sit_code
    verdict = analyzer.finish()
    for event in analyzer.drain_events():
        if event.kind is EventKind.DTMF:
            digits.append(event.digit)
    return {
        "file": str(path),
        "verdict": verdict.kind.name,
        "cause": verdict.cause.name.lower(),
        "decided_ms": verdict.decided_ms,
        "beep_ms": verdict.beep_ms,
        "digits": "".join(digits),
        "sit_code": sit_code or verdict.sit_code,
    }


@click.command("amd")
@click.argument("files", nargs=-1, required=True, type=click.Path())
def amd(files):
    """Classify recorded calls: HUMAN, MACHINE, NOTSURE, SILENCE, SIT or FAX.

    FILES are mono WAV files, 8 or 16 kHz, 16-bit PCM, mu-law or A-law. One
    JSON line per file goes to stdout. A missing, unreadable or invalid file
    is reported in one line on stderr, and makes the exit status 1 after the
    other files are done.
    """
    failed = 0
    for path in files:
        try:
            result = analyse_file(path)
        except ValueError as exc:
            failed += 1
            click.echo(f"callsure amd: {exc}", err=True)
            continue
        click.echo(json.dumps(result))
    if failed:
        raise SystemExit(1)
