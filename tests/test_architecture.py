"""The layout rules of docs/ARCHITECTURE.md that a change could quietly break."""

from pathlib import Path

import quadlab

ROOT = Path(quadlab.__file__).parent


def test_no_module_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}, f"split these modules (at most 600 lines each): {long}"


def test_one_entry_point_per_study():
    # a study runs as `quadlab <name>` (or studies/<name>.py, which calls the command): no module-level
    # `python -m quadlab.studies.<name>` path that would bypass the command's one error path
    from quadlab.cli import STUDIES

    for command, (module, _) in STUDIES.items():
        text = (ROOT / "studies" / f"{module}.py").read_text()
        assert "def main(" in text, command
        assert '__name__ == "__main__"' not in text, f"{module}.py has its own entry point"
