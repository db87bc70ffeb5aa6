"""The README's study numbers come from committed JSON written by the command that prints them.

``docs/results/case1_4.json`` is what ``quadlab case1_4 --json docs/results/case1_4.json`` wrote; the README's
table must be exactly :func:`quadlab.studies.case1_4.readme_table` of it, and the sentences that quote its
numbers must quote them as they are.
"""

import json
import re
from pathlib import Path

import pytest

from quadlab.studies import case1_4

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


@pytest.fixture(scope="module")
def readme() -> str:
    return (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def c14() -> dict:
    return json.loads((RESULTS / "case1_4.json").read_text())


def test_the_case1_4_table_is_the_committed_json(readme, c14):
    table = case1_4.readme_table(c14)
    assert table in readme, "README's case1_4 table differs from readme_table(docs/results/case1_4.json)"
    assert c14["kappa"] == 5000 and c14["seeds"] == 5 and c14["tol"] == 1e-6 and len(c14["cases"]) == 4


def test_the_caps_quoted_are_the_runs_caps(readme, c14):
    caps = {o["max_steps"] for c in c14["cases"] for o in c["optimizers"].values()}
    assert len(caps) == 1
    cap = caps.pop()
    quoted = {int(m.replace(",", "")) for m in re.findall(r"\((\d{2},\d{3}) steps\)", readme)}
    assert quoted == {cap}, (quoted, cap)


def test_the_unstable_marks_are_explained(readme, c14):
    marked = any(o.get("unstable") or o.get("per_seed", {}).get("unstable")
                 for c in c14["cases"] for o in c["optimizers"].values())
    legend = readme.split(case1_4.readme_table(c14))[0][-2500:]  # the paragraph that introduces the table
    assert not marked or "‡ marks an unstable cell" in legend


def test_the_explanations_table_is_the_committed_json(readme):
    from quadlab.studies import explanations

    res = json.loads((RESULTS / "explanations.json").read_text())
    assert explanations.readme_table(res) in readme
    assert res["settings"]["seeds"] == 5 and not res["settings"]["quick"]


def test_the_readings_table_is_the_committed_json(readme):
    from quadlab.studies import readings

    res = json.loads((RESULTS / "readings.json").read_text())
    assert readings.readme_table(res) in readme
    assert res["settings"]["seeds"] == 8 and not res["settings"]["quick"]
