"""Voice prompts: the shipped WAV files, their texts, and how to regenerate them.

The prompts in ``actors/data/prompts/`` are synthesised with espeak-ng
and converted by sox to 8 kHz mono G.711 mu-law, the format of the call
itself, so pjsua2 plays them without resampling and they stay small (the
folder's README gives source and licence). Numbers and times are read
back by playing the digit prompts ``digit-0`` ... ``digit-9`` in turn.

Regenerate after changing a text::

    python -m callsure.actors.sip.prompts --generate
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from callsure.engine.exceptions import ConfigError

DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / "data" / "prompts"

PROMPT_TEXTS: dict[str, str] = {
    # Outbound callback.
    "confirm": "This is your callback. Press 1 for an agent.",
    "connecting": "Connecting you to an agent.",
    "machine_message": "We tried to call you back. Please call us.",
    # Inbound surge IVR.
    "welcome": "Thank you for calling.",
    "wait_is": "Your expected wait is about",
    "minutes": "minutes.",
    "offer": (
        "For a callback when an agent is free, press 1. "
        "To choose the time, press 2. At the predicted time, press 3."
    ),
    "enter_time": "Enter the time in four digits.",
    "promise_asap": "We will call you when an agent is free.",
    "promise_at": "We will call you back at",
    "infeasible": "Sorry, that time is not available.",
    "invalid": "Not a valid choice.",
    "stay": "Please hold for the next agent.",
    "goodbye": "Thank you. Goodbye.",
    **{f"digit-{d}": word for d, word in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven",
         "eight", "nine"]
    )},
}  # fmt: skip


class PromptLibrary:
    """Prompt names to WAV paths, checked when a scenario or flow uses them.

    Parameters
    ----------
    directory : path-like, optional
        Folder of ``<name>.wav`` files; the shipped prompts by default.
    """

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory else DEFAULT_DIRECTORY
        if not self.directory.is_dir():
            raise ConfigError(
                "sip.prompts_dir",
                str(self.directory),
                "an existing folder of <name>.wav prompt files",
            )

    def names(self) -> set[str]:
        return {path.stem for path in self.directory.glob("*.wav")}

    def path(self, name: str) -> str:
        """Return the file of prompt ``name``; ``KeyError`` when it is missing."""
        path = self.directory / f"{name}.wav"
        if not path.is_file():
            raise KeyError(f"prompt {name!r} not found in {self.directory}")
        return str(path)

    def files(self, names: Iterable[str]) -> list[str]:
        return [self.path(name) for name in names]


def digit_prompts(text: str) -> list[str]:
    """Return the digit prompt names that read ``text``'s digits one by one.

    >>> digit_prompts("14:30")
    ['digit-1', 'digit-4', 'digit-3', 'digit-0']
    """
    return [f"digit-{character}" for character in text if character.isdigit()]


def generate(directory: Path = DEFAULT_DIRECTORY, voice: str = "en-us") -> None:
    """Synthesise every prompt of ``PROMPT_TEXTS`` into ``directory``.

    Raises
    ------
    FileNotFoundError
        When espeak-ng or sox is not installed.
    """
    for program in ("espeak-ng", "sox"):
        if shutil.which(program) is None:
            raise FileNotFoundError(f"{program} not found: apt-get install {program}")
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for name, text in PROMPT_TEXTS.items():
            raw = Path(scratch) / f"{name}.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", "185", "-w", str(raw), text],
                check=True,
            )
            # Trim espeak's leading and trailing silence, then add 100 ms.
            subprocess.run(
                [
                    "sox", str(raw), "-r", "8000", "-c", "1", "-e", "u-law",
                    str(directory / f"{name}.wav"),
                    "silence", "1", "0.02", "0.5%", "reverse",
                    "silence", "1", "0.02", "0.5%", "reverse", "pad", "0", "0.1",
                ],
                check=True,
            )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the voice prompts.")
    parser.add_argument("--generate", action="store_true", required=True)
    parser.add_argument("--directory", type=Path, default=DEFAULT_DIRECTORY)
    arguments = parser.parse_args(argv)
    generate(arguments.directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
