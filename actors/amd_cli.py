"""The ``callsure amd`` command: classify recorded calls.

Prints one JSON object per file, for integrators checking the detector on
their own recordings.
"""

from __future__ import annotations

import json
import logging

import click

from callsure.dsp import EventKind, StreamAnalyzer, read_wav

logger = logging.getLogger(__name__)


def analyse_file(path: str) -> dict:
    """Return the verdict and events of one WAV file as a JSON-ready dict."""
    audio = read_wav(path)
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
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def amd(files):
    """Classify recorded calls: HUMAN, MACHINE, NOTSURE, SILENCE, SIT or FAX.

    FILES are mono WAV files, 8 or 16 kHz, PCM16, mu-law or A-law. One JSON
    line per file goes to stdout; bad files are reported on stderr and make
    the exit status 1 after the others are done.
    """
    failed = 0
    for path in files:
        try:
            result = analyse_file(path)
        except (ValueError, OSError) as exc:
            failed += 1
            click.echo(f"callsure amd: {exc}", err=True)
            continue
        click.echo(json.dumps(result))
    if failed:
        raise SystemExit(1)
