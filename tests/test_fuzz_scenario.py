"""Property: whatever a scenario file holds, the loader returns a scenario or raises
:class:`InputError` with one line ``FILE: ...``; never another exception, never a traceback.

Three sources of files: any YAML-able structure, small mutations of a valid scenario (the
realistic typos: a value of the wrong type, a key deleted or added anywhere), and raw text.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import InputError
from harness.scenario import Scenario, load_scenario
from tests.conftest import hello_scenario

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
#: Characters that YAML and error messages treat specially, often; then any (UTF-8 safe).
characters = st.one_of(
    st.sampled_from(list(" \n\t\r:-#&*!|>'\"%@`{}[],.\\")),
    st.characters(exclude_categories=("Cs",)),
)
text = st.text(characters, max_size=20)
#: Keys: the scenario's own field names (to collide with them), awkward ones, or anything.
keys = st.one_of(
    st.sampled_from(["name", "load", "clients", "systems", "options", "label", "payload"]),
    st.sampled_from(["", " ", "a\nb", "\n", "\t", "é", "1", "null", "<<"]),
    text,
    st.integers(),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # nan and inf included
    text,
    st.sampled_from(["pipe", "triton", "echo", "clients", "1", "-1", "0", ""]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def scenario_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "scenario.yaml"


def loads_or_fails_cleanly(path: Path, content: str) -> Scenario | None:
    path.write_text(content, encoding="utf-8")
    try:
        return load_scenario(path)
    except InputError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: "), message
        assert "\n" not in message and "Traceback" not in message, message
        return None


@FUZZ
@given(document=values)
def test_any_yaml_structure(scenario_path, document):
    loads_or_fails_cleanly(scenario_path, yaml.safe_dump(document))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a nested structure of dicts and lists."""
    found = [prefix]
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for key, child in items:
        found.extend(_paths(child, (*prefix, key)))
    return found


@st.composite
def mutated_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A valid scenario with 1-3 random edits: replace, delete or add at any location."""
    data = copy.deepcopy(hello_scenario())
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data)))
        node = data
        for key in path:
            node = node[key]
        if isinstance(node, (dict, list)) and draw(st.booleans()):  # add inside it
            if isinstance(node, dict):
                node[draw(keys)] = draw(values)
            else:
                node.append(draw(values))
            continue
        if not path:
            continue
        *parents, leaf = path
        parent = data
        for key in parents:
            parent = parent[key]
        if draw(st.booleans()):
            parent[leaf] = draw(values)
        else:
            del parent[leaf]
    return data


@FUZZ
@given(document=mutated_scenarios())
def test_mutations_of_a_valid_scenario(scenario_path, document):
    loads_or_fails_cleanly(scenario_path, yaml.safe_dump(document))


@FUZZ
@given(content=st.text(st.characters(exclude_categories=("Cs",)), max_size=200))
def test_raw_text(scenario_path, content):
    loads_or_fails_cleanly(scenario_path, content)


def test_the_unmutated_scenario_loads(scenario_path):
    """The fuzz starts from a valid scenario: otherwise every mutation fails for free."""
    assert loads_or_fails_cleanly(scenario_path, yaml.safe_dump(hello_scenario())) is not None
