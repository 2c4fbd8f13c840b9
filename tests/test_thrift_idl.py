"""The committed Thrift code is what the IDL generates today."""

from __future__ import annotations

import filecmp
import shutil
import subprocess

import pytest

from tests.conftest import ROOT


@pytest.mark.skipif(shutil.which("thrift") is None, reason="thrift-compiler not installed")
def test_generated_code_is_current(tmp_path):
    subprocess.run([ROOT / "scripts" / "gen_thrift.sh", tmp_path / "gen"], check=True)
    committed = ROOT / "engines" / "thrift" / "gen"
    comparison = filecmp.dircmp(committed, tmp_path / "gen", ignore=["__pycache__"])
    stale: list[str] = []

    def collect(node: filecmp.dircmp) -> None:
        stale.extend(node.diff_files + node.left_only + node.right_only)
        for child in node.subdirs.values():
            collect(child)

    collect(comparison)
    assert not stale, f"regenerate with scripts/gen_thrift.sh: {stale}"
