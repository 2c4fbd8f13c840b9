"""The light core: a system whose extra is not installed is one line naming the extra.

The extras themselves are tested by installing the core alone in a fresh venv (see the
report of issue 11); here the registry's table of needs is pointed at a module that does
not exist, which is what a missing extra looks like to the harness.
"""

from __future__ import annotations

import pytest

from harness import system
from harness.errors import InputError
from harness.scenario import load_scenario
from tests.conftest import hello_scenario


def test_every_system_but_the_core_names_an_extra():
    assert set(system.EXTRAS) == set(system.REGISTRY) - {"pipe", "null"}
    extras = {extra for extra, _ in system.EXTRAS.values()}
    assert extras == {"thrift", "triton", "torchpipe", "thrift,torchpipe"}
    assert system.missing_extra("pipe") is None


def test_a_scenario_with_a_system_whose_extra_is_missing_is_one_line(write_scenario, monkeypatch):
    monkeypatch.setitem(system.EXTRAS, "triton", ("triton", ("pipebench_not_installed",)))
    path = write_scenario(hello_scenario(systems=["pipe", "triton"]))
    with pytest.raises(InputError) as info:
        load_scenario(path)
    assert str(info.value) == (
        f"{path}: systems.1.name: system 'triton' needs the 'triton' extra "
        "(missing: pipebench_not_installed): pip install 'pipebench[triton]'"
    )
    load_scenario(write_scenario(hello_scenario(systems=["pipe"]), "core.yaml"))  # core: fine
