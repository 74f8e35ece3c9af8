"""IVR scenarios as data: load, validate and look up nodes.

A scenario is a YAML or JSON document, so a visual editor can write it::

    version: 1
    start: greeting
    queue: general            # queue the callbacks are for
    nodes:
      greeting:
        type: play
        prompts: [welcome, wait_is, $wait_minutes, minutes]
        next: offer
      offer:
        type: menu
        prompts: [offer]
        options:
          "1": {next: promise_asap, callback: asap}
          "2": {next: ask_time}
        ...

Node types and their fields:

``play``
    ``prompts``, ``next`` (optional; the call ends without it).
``menu``
    ``prompts``; ``options`` (a DTMF key ``0-9 * #`` -> ``next`` and an
    optional ``callback`` mode ``asap`` or ``predicted``); ``timeout_s``
    (default 8); ``attempts`` (default 3); ``invalid_prompts``;
    ``on_failure`` (node after the last attempt; the call ends without it).
``collect``
    ``prompts``; ``digits`` (count); ``variable`` (name to store them in);
    ``timeout_s``; ``next``; ``on_failure``.
``callback``
    ``mode`` (``asap``, ``at_time``, ``predicted``); ``time_variable``
    (for ``at_time``: the variable holding ``HHMM``); ``next``;
    ``on_infeasible``; ``on_failure``.
``hangup``
    ``prompts`` (optional, played first).

A prompt is a prompt name (a WAV file of the prompt library) or a
variable reference ``$name``, read back digit by digit. Variables are
``wait_minutes``, ``promised_time`` (``HHMM``, local time of the contact
center), ``caller`` (the calling number) and those stored by ``collect``.

An invalid scenario is rejected at load with the path of the bad node,
for example ``nodes.offer.options.2.next: unknown node 'foo'``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from callsure.engine.exceptions import ValidationError

DEFAULT_SCENARIO = (
    Path(__file__).resolve().parent.parent / "data" / "scenarios" / "surge.yaml"
)
NODE_TYPES = ("play", "menu", "collect", "callback", "hangup")
CALLBACK_MODES = ("asap", "at_time", "predicted")
DTMF_KEYS = set("0123456789*#")
BUILTIN_VARIABLES = ("wait_minutes", "promised_time", "caller")
# Most digits one collect node takes. An E.164 number has at most 15, so
# this leaves room for longer account numbers.
MAX_COLLECT_DIGITS = 32
# Nodes that go on without input from the caller.
_NO_INPUT_TYPES = ("play", "callback")
_LINKS = ("next", "on_failure", "on_infeasible")

_FIELDS = {
    "play": {"type", "prompts", "next"},
    "menu": {
        "type",
        "prompts",
        "options",
        "timeout_s",
        "attempts",
        "invalid_prompts",
        "on_failure",
    },
    "collect": {
        "type",
        "prompts",
        "digits",
        "variable",
        "timeout_s",
        "next",
        "on_failure",
    },
    "callback": {
        "type",
        "mode",
        "time_variable",
        "next",
        "on_infeasible",
        "on_failure",
    },
    "hangup": {"type", "prompts"},
}


class ScenarioError(ValidationError):
    """A scenario document is invalid; ``field`` is the path of the bad node.

    ``node`` is the name of the node the error belongs to, or None for an
    error of the document itself (``version``, ``start``, ``queue``).
    """

    def __init__(self, path: str, message: str, source: str = ""):
        super().__init__(path, None, message)
        self.path = path
        self.source = source
        self.node: str | None = None

    def __str__(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return f"{prefix}{self.path}: {self.fix}"


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: the document plus where it came from."""

    start: str
    queue: str
    nodes: dict[str, dict[str, Any]]
    source: str

    def node(self, name: str) -> dict[str, Any]:
        return self.nodes[name]


def load_scenario(path: str | Path | None = None, prompts=None) -> Scenario:
    """Load and validate a scenario file (YAML, or JSON by ``.json`` suffix).

    Parameters
    ----------
    path : path-like, optional
        The shipped surge scenario when omitted.
    prompts : PromptLibrary, optional
        When given, every prompt name must exist in it.

    Raises
    ------
    ScenarioError
        With the path of the first invalid node or field.
    """
    file = Path(path) if path else DEFAULT_SCENARIO
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(
            "scenario", f"cannot read {file}: {error.strerror}", str(file)
        ) from None
    except UnicodeDecodeError as error:
        raise ScenarioError(
            "scenario",
            f"cannot read {file}: not UTF-8 text ({error.reason} at byte "
            f"{error.start}); save it as UTF-8",
            str(file),
        ) from None
    try:
        document = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ScenarioError("scenario", f"not valid: {error}", str(file)) from None
    known_prompts = prompts.names() if prompts is not None else None
    try:
        return parse_scenario(document, known_prompts, source=str(file))
    except ScenarioError as error:
        error.source = str(file)
        raise


def parse_scenario(
    document: Any, known_prompts: set[str] | None = None, source: str = ""
) -> Scenario:
    """Validate a scenario document already parsed into Python objects.

    Raises
    ------
    ScenarioError
        The first error that `scenario_errors` finds.
    """
    for error in _find_errors(document, known_prompts):
        raise error
    return Scenario(
        start=document["start"],
        queue=document.get("queue", "general"),
        nodes=document["nodes"],
        source=source,
    )


def scenario_errors(
    document: Any, known_prompts: set[str] | None = None
) -> list[ScenarioError]:
    """Return every error of a scenario document, at most one per node.

    Editors use it to mark all bad nodes at once. The gateway loads with
    `parse_scenario`, which raises the first of these errors.
    """
    return list(_find_errors(document, known_prompts))


def _find_errors(document: Any, known_prompts: set[str] | None):
    if not isinstance(document, dict):
        yield ScenarioError("scenario", "expected a mapping with version, start, nodes")
        return
    if "version" not in document:
        yield ScenarioError("version", "missing; add version: 1")
    elif document["version"] != 1:
        yield ScenarioError(
            "version", f"unsupported version {document['version']!r}; use 1"
        )
    nodes = document.get("nodes")
    if not isinstance(nodes, dict) or not nodes:
        yield ScenarioError("nodes", "expected a non-empty mapping of node names")
        return
    start = document.get("start")
    if start not in nodes:
        yield ScenarioError("start", f"unknown node {start!r}")
    queue = document.get("queue", "general")
    if not isinstance(queue, str) or not queue:
        yield ScenarioError("queue", "expected a queue name")

    variables = set(BUILTIN_VARIABLES)
    for node in nodes.values():
        if isinstance(node, dict) and node.get("type") == "collect":
            if isinstance(node.get("variable"), str):
                variables.add(node["variable"])
    checker = _Checker(nodes, variables, known_prompts)
    failed = set()
    for name, node in nodes.items():
        try:
            checker.node(f"nodes.{name}", node)
        except ScenarioError as error:
            error.node = name
            failed.add(name)
            yield error
    if not failed:
        yield from _input_free_loops(nodes)


def _input_free_loops(nodes: dict):
    """Yield an error for the first loop found of nodes that never wait for
    the caller, which would hold the call forever."""

    def links(name: str) -> list[tuple[str, str]]:
        node = nodes[name]
        if node["type"] not in _NO_INPUT_TYPES:
            return []
        return [(link, node[link]) for link in _LINKS if link in node]

    done: set[str] = set()
    for first in nodes:
        if first in done:
            continue
        # Depth-first search; `path` is the chain of nodes being explored,
        # each with its links not yet followed.
        path = [(first, iter(links(first)))]
        on_path = {first}
        while path:
            name, pending = path[-1]
            step = next(pending, None)
            if step is None:
                path.pop()
                on_path.discard(name)
                done.add(name)
                continue
            link, following = step
            if following in on_path:
                names = [n for n, _ in path]
                loop = names[names.index(following) :] + [following]
                error = ScenarioError(
                    f"nodes.{name}.{link}",
                    f"loops back through {' -> '.join(loop)} without waiting for "
                    "the caller; route it to a menu, collect or hangup node",
                )
                error.node = name
                yield error
                return
            if following not in done:
                path.append((following, iter(links(following))))
                on_path.add(following)


class _Checker:
    def __init__(self, nodes: dict, variables: set[str], prompts: set[str] | None):
        self.nodes = nodes
        self.variables = variables
        self.prompts = prompts

    def node(self, path: str, node: Any) -> None:
        if not isinstance(node, dict):
            raise ScenarioError(path, "expected a mapping with a type")
        kind = node.get("type")
        if kind not in NODE_TYPES:
            raise ScenarioError(
                f"{path}.type", f"unknown type {kind!r}; use one of {NODE_TYPES}"
            )
        unknown = set(node) - _FIELDS[kind]
        if unknown:
            raise ScenarioError(
                f"{path}.{sorted(unknown)[0]}",
                f"unknown field for a {kind} node; "
                f"allowed: {', '.join(sorted(_FIELDS[kind]))}",
            )
        self.prompt_list(f"{path}.prompts", node.get("prompts", []))
        for link in _LINKS:
            if link in node:
                self.link(f"{path}.{link}", node[link])
        getattr(self, f"check_{kind}")(path, node)

    def link(self, path: str, target: Any) -> None:
        if target not in self.nodes:
            raise ScenarioError(path, f"unknown node {target!r}")

    def prompt_list(self, path: str, prompts: Any) -> None:
        if not isinstance(prompts, list):
            raise ScenarioError(path, "expected a list of prompt names")
        for index, prompt in enumerate(prompts):
            item_path = f"{path}.{index}"
            if not isinstance(prompt, str) or not prompt:
                raise ScenarioError(item_path, "expected a prompt name or $variable")
            if prompt.startswith("$"):
                if prompt[1:] not in self.variables:
                    raise ScenarioError(
                        item_path,
                        f"unknown variable {prompt!r}; known: "
                        f"{', '.join(sorted(self.variables))}",
                    )
            elif self.prompts is not None and prompt not in self.prompts:
                raise ScenarioError(item_path, f"unknown prompt {prompt!r}")

    def positive(self, path: str, value: Any, integer: bool = False) -> None:
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
            raise ScenarioError(path, f"expected a positive number, got {value!r}")

    def check_play(self, path: str, node: dict) -> None:
        if not node.get("prompts"):
            raise ScenarioError(f"{path}.prompts", "a play node needs prompts")

    def check_hangup(self, path: str, node: dict) -> None:
        return

    def check_menu(self, path: str, node: dict) -> None:
        options = node.get("options")
        if not isinstance(options, dict) or not options:
            raise ScenarioError(f"{path}.options", "expected a mapping key -> option")
        for key, option in options.items():
            item_path = f"{path}.options.{key}"
            if str(key) not in DTMF_KEYS:
                raise ScenarioError(item_path, "a key must be one of 0-9, * or #")
            if not isinstance(option, dict) or "next" not in option:
                raise ScenarioError(item_path, "expected a mapping with next")
            unknown = set(option) - {"next", "callback"}
            if unknown:
                raise ScenarioError(
                    f"{item_path}.{sorted(unknown)[0]}",
                    "unknown field; use next, callback",
                )
            self.link(f"{item_path}.next", option["next"])
            if "callback" in option and option["callback"] not in ("asap", "predicted"):
                raise ScenarioError(
                    f"{item_path}.callback",
                    f"unknown mode {option['callback']!r}; use asap or predicted",
                )
        self.prompt_list(f"{path}.invalid_prompts", node.get("invalid_prompts", []))
        self.positive(f"{path}.timeout_s", node.get("timeout_s", 8))
        self.positive(f"{path}.attempts", node.get("attempts", 3), integer=True)

    def check_collect(self, path: str, node: dict) -> None:
        self.positive(f"{path}.digits", node.get("digits"), integer=True)
        if node["digits"] > MAX_COLLECT_DIGITS:
            raise ScenarioError(
                f"{path}.digits",
                f"expected at most {MAX_COLLECT_DIGITS} digits, got {node['digits']}",
            )
        if not isinstance(node.get("variable"), str) or not node["variable"]:
            raise ScenarioError(f"{path}.variable", "expected a variable name")
        if "next" not in node:
            raise ScenarioError(f"{path}.next", "a collect node needs next")
        self.positive(f"{path}.timeout_s", node.get("timeout_s", 10))

    def check_callback(self, path: str, node: dict) -> None:
        mode = node.get("mode")
        if mode not in CALLBACK_MODES:
            raise ScenarioError(
                f"{path}.mode", f"unknown mode {mode!r}; use one of {CALLBACK_MODES}"
            )
        if "next" not in node:
            raise ScenarioError(f"{path}.next", "a callback node needs next")
        if mode == "at_time":
            variable = node.get("time_variable")
            if variable not in self.variables:
                raise ScenarioError(
                    f"{path}.time_variable",
                    f"unknown variable {variable!r}; set it with a collect node",
                )
