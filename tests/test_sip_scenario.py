"""IVR scenario loading and validation, and the SIP outcome mapping."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from callsure.actors.sip.outcomes import (
    outcome_for_status,
    outcome_for_verdict,
    sit_code_from_name,
)
from callsure.actors.sip.prompts import PromptLibrary, digit_prompts
from callsure.actors.sip.scenario import (
    DEFAULT_SCENARIO,
    ScenarioError,
    load_scenario,
    parse_scenario,
)
from callsure.engine.callbacks import Outcome, SitCode


@pytest.fixture
def document() -> dict:
    return yaml.safe_load(DEFAULT_SCENARIO.read_text(encoding="utf-8"))


def test_default_scenario_loads_with_shipped_prompts():
    scenario = load_scenario(None, PromptLibrary())
    assert scenario.start == "greeting"
    assert scenario.queue == "general"
    assert set(scenario.node("offer")["options"]) == {"1", "2", "3"}


def test_every_prompt_of_default_scenario_exists():
    prompts = PromptLibrary()
    names = prompts.names()
    for node in load_scenario(None, prompts).nodes.values():
        for prompt in node.get("prompts", []):
            assert prompt.startswith("$") or prompt in names


def test_unknown_next_node_names_its_path(document):
    document["nodes"]["offer"]["options"]["2"]["next"] = "foo"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(document)
    assert str(caught.value) == "nodes.offer.options.2.next: unknown node 'foo'"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda d: d.update(start="nowhere"), "start"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d["nodes"]["greeting"].update(type="dance"), "nodes.greeting.type"),
        (lambda d: d["nodes"]["greeting"].update(hue=1), "nodes.greeting.hue"),
        (lambda d: d["nodes"]["offer"]["options"].update(x={"next": "offer"}),
         "nodes.offer.options.x"),
        (lambda d: d["nodes"]["offer"].update(timeout_s=-1), "nodes.offer.timeout_s"),
        (lambda d: d["nodes"]["ask_time"].update(digits=0), "nodes.ask_time.digits"),
        (lambda d: d["nodes"]["ask_time"].update(digits=100000000),
         "nodes.ask_time.digits"),
        (lambda d: d.pop("version"), "version"),
        (lambda d: d["nodes"]["greeting"].update(next="greeting"),
         "nodes.greeting.next"),
        (lambda d: d["nodes"]["request_asap"].update(mode="never"),
         "nodes.request_asap.mode"),
        (lambda d: d["nodes"]["greeting"]["prompts"].append("$shoe_size"),
         "nodes.greeting.prompts.4"),
        (lambda d: d["nodes"]["promise_at"].update(prompts="goodbye"),
         "nodes.promise_at.prompts"),
    ],
)  # fmt: skip
def test_invalid_node_rejected_with_path(document, change, path):
    broken = copy.deepcopy(document)
    change(broken)
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(broken)
    assert caught.value.path == path


def test_loop_without_input_names_nodes(document):
    document["nodes"]["time_not_available"]["next"] = "request_at_time"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(document)
    assert caught.value.path == "nodes.time_not_available.next"
    assert "request_at_time -> time_not_available -> request_at_time" in str(
        caught.value
    )


def test_loop_through_menu_accepted(document):
    # time_not_available goes back to the offer menu, which waits for a key.
    assert parse_scenario(document).node("time_not_available")["next"] == "offer"


def test_unknown_prompt_rejected_when_library_given(document, tmp_path):
    document["nodes"]["greeting"]["prompts"][0] = "welcome_typo"
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, PromptLibrary())
    assert caught.value.path == "nodes.greeting.prompts.0"
    assert str(path) in str(caught.value)


def test_json_scenario_loads(document, tmp_path):
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    assert load_scenario(path).start == "greeting"


def test_unparsable_scenario_rejected(tmp_path):
    path = tmp_path / "scenario.yaml"
    path.write_text("nodes: [unclosed", encoding="utf-8")
    with pytest.raises(ScenarioError, match="not valid"):
        load_scenario(path)


def test_digit_prompts_read_time():
    assert digit_prompts("14:05") == ["digit-1", "digit-4", "digit-0", "digit-5"]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (486, Outcome.BUSY),
        (600, Outcome.BUSY),
        (480, Outcome.NO_ANSWER),
        (408, Outcome.NO_ANSWER),
        (404, Outcome.INVALID_NUMBER),
        (484, Outcome.INVALID_NUMBER),
        (503, Outcome.NETWORK_FAILURE),
        (401, Outcome.NETWORK_FAILURE),
        (407, Outcome.NETWORK_FAILURE),
        (603, Outcome.REJECTED),
        (415, Outcome.REJECTED),
        (599, Outcome.NETWORK_FAILURE),
        (0, Outcome.UNKNOWN),
    ],
)
def test_status_maps_to_outcome(status, outcome):
    assert outcome_for_status(status) is outcome


def test_verdicts_map_to_outcomes():
    assert outcome_for_verdict("HUMAN") is Outcome.CONNECTED
    assert outcome_for_verdict("NOTSURE") is Outcome.CONNECTED
    assert outcome_for_verdict("MACHINE") is Outcome.MACHINE
    assert outcome_for_verdict("SIT") is Outcome.SIT
    with pytest.raises(ValueError, match="unknown verdict"):
        outcome_for_verdict("ALIEN")


def test_sit_code_names_parse():
    assert sit_code_from_name("ic") is SitCode.IC
    assert sit_code_from_name("nope") is None
    assert sit_code_from_name(None) is None
