"""The public API's docstrings: numpydoc sections on every public callable, and their Examples run."""

import doctest
import importlib
import inspect

import pytest

import quadlab

#: the public modules (quadlab.__all__ names some; the rest are documented in docs/ARCHITECTURE.md).
MODULES = ["spectra", "stored", "sampling", "problem", "rules", "tune", "theory", "rstats", "rates", "checks", "krylov",
           "slq", "extremes", "density", "lanczos", "heterogeneity", "symbolic", "backend", "plots", "optim", "runner",
           "contract", "noise", "nqm", "explain", "dist", "sweep", "results", "stability", "roundoff"]
EXTRACT = ["extract.build", "extract.data", "extract.hvp", "extract.models", "extract.blocks", "extract.spectra",
           "extract.user"]


def _section(doc: str, name: str) -> bool:
    lines = doc.splitlines()
    return any(a.strip() == name and b.strip() and set(b.strip()) == {"-"} for a, b in zip(lines, lines[1:]))


def _public(modname: str):
    """(qualified name, object) of every public function and class a module defines and names in __all__, and
    of the public methods those classes define."""
    mod = importlib.import_module(f"quadlab.{modname}")
    for name in mod.__all__:
        obj = getattr(mod, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != mod.__name__:
            continue  # constants, and re-exports (checked where they are defined)
        yield f"{mod.__name__}.{name}", obj
        if inspect.isclass(obj):
            for mname, m in vars(obj).items():
                if mname.startswith("_") or not callable(m) and not isinstance(m, (classmethod, staticmethod)):
                    continue
                yield f"{mod.__name__}.{name}.{mname}", getattr(obj, mname)


def _missing(qual: str, obj) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    if not doc:
        return ["a docstring"]
    if inspect.isclass(obj):
        return [] if _section(doc, "Parameters") or _section(doc, "Attributes") else ["Parameters or Attributes"]
    sig = inspect.signature(obj)
    params = [p for n, p in sig.parameters.items() if n not in ("self", "cls")]
    out = []
    if params and not _section(doc, "Parameters"):
        out.append("Parameters")
    returns_something = sig.return_annotation not in (None, "None", inspect.Signature.empty) or (
        sig.return_annotation is inspect.Signature.empty and "return " in inspect.getsource(obj))
    if returns_something and not (_section(doc, "Returns") or _section(doc, "Yields")):
        out.append("Returns")
    return out


def _modules(names):
    return [pytest.param(m, id=m) for m in names]


@pytest.mark.parametrize("modname", _modules(MODULES) + _modules(EXTRACT))
def test_public_callables_have_numpydoc_sections(modname):
    if modname.startswith("extract"):
        pytest.importorskip("torch")
    gaps = {q: m for q, obj in _public(modname) if (m := _missing(q, obj))}
    assert gaps == {}, "numpydoc sections missing (name: sections):\n" + "\n".join(f"{q}: {m}" for q, m in gaps.items())


def test_top_level_entry_points_have_examples():
    # what quadlab itself names: every function and class shows how it is called
    for name in quadlab.__all__:
        obj = getattr(quadlab, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert _section(inspect.getdoc(obj) or "", "Examples"), f"quadlab.{name} has no Examples section"


@pytest.mark.parametrize("modname", _modules(MODULES) + _modules(EXTRACT))
def test_docstring_examples_run(modname, monkeypatch, tmp_path):
    if modname.startswith("extract"):
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    mod = importlib.import_module(f"quadlab.{modname}")
    res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE, report=True)
    assert res.failed == 0, f"{res.failed} of {res.attempted} docstring examples of {mod.__name__} failed (see above)"


def test_the_checker_sees_a_missing_section():
    # the coverage test must be able to fail: a function with parameters and a return value but no sections
    def f(x):
        """Twice x."""
        return 2 * x

    assert _missing("f", f) == ["Parameters", "Returns"]
    f.__doc__ = "Twice x.\n\nParameters\n----------\nx : float\n\nReturns\n-------\nfloat\n"
    assert _missing("f", f) == []
