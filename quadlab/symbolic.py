"""Exact derivations with sympy for the smallest problems the theory talks about.

Each function derives its results (it solves the defining equations rather than stating the answer) and
returns a :class:`Derivation`: the symbols, the derived expressions, and ``evaluate(**values)`` for exact
values at rational inputs.  The tests compare :mod:`quadlab.theory` with these.

* :func:`gd_two_eigenvalues`: H with eigenvalues 0 < λ1 < λ2.  ρ(η) = max(|1 − ηλ1|, |1 − ηλ2|) is the
  maximum of a falling and a rising branch, so it is smallest where they meet: 1 − ηλ1 = ηλ2 − 1.
* :func:`gd_block2`: one 2×2 block H = [[a, b], [b, c]]; its eigenvalues from the characteristic polynomial,
  then the two-eigenvalue result.
* :func:`adam_two_eigenvalues`: H = diag(λ1, λ2) as two 1×1 blocks, start error (e1, e2).
* :func:`adam_block2`: one 2×2 block and a start error (e1, e2): D = diag(|He|), M = D^{-1/2}HD^{-1/2}.
* :func:`heavy_ball_two_eigenvalues`: the momentum and step that give both extreme eigenvalues a double
  root of z² − (1 + μ − ηλ)z + μ.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

__all__ = [
    "Derivation",
    "adam_block2",
    "adam_two_eigenvalues",
    "gd_block2",
    "gd_two_eigenvalues",
    "heavy_ball_two_eigenvalues",
]


@dataclass(frozen=True)
class Derivation:
    """A sympy derivation: its input symbols and the expressions derived from them.

    Parameters
    ----------
    symbols : dict
        name → sympy Symbol (the inputs).
    exprs : dict
        name → sympy expression (the results); ``derivation[name]`` is ``exprs[name]``.

    Examples
    --------
    >>> from quadlab import symbolic
    >>> d = symbolic.gd_two_eigenvalues()
    >>> sorted(d.symbols), str(d["rho_opt_kappa"])
    (['eta', 'lam1', 'lam2'], '(kappa - 1)/(kappa + 1)')
    """

    symbols: dict
    exprs: dict

    def __getitem__(self, name):
        return self.exprs[name]

    def evaluate(self, name: str, **values):
        """The exact value of one expression at the given inputs.

        Parameters
        ----------
        name : str
            A key of ``exprs``.
        **values
            Input name → value: ints, Fractions, strings such as "3/7" or sympy numbers (floats are converted
            exactly, so prefer rationals).

        Returns
        -------
        sympy expression
            Exact (a Rational where the inputs are rational and the result is).

        Raises
        ------
        ValueError
            If an input symbol has no value (give every one, even those ``name`` does not use).
        KeyError
            If ``name`` is not a derived expression.

        Examples
        --------
        >>> from quadlab import symbolic
        >>> symbolic.gd_two_eigenvalues().evaluate("rho_opt", lam1=1, lam2=3, eta=0)
        1/2
        """
        missing = set(self.symbols) - set(values)
        if missing:
            raise ValueError(f"evaluate({name!r}) needs values for {sorted(missing)}")
        subs = {self.symbols[k]: sp.nsimplify(v, rational=True) if not isinstance(v, sp.Basic) else v
                for k, v in values.items() if k in self.symbols}
        return self.exprs[name].subs(subs)

    def numeric(self, name: str, digits: int = 40, **values) -> float:
        """One expression at exact rational inputs, computed in ``digits``-digit arithmetic.

        The expression is compiled once to mpmath (much faster than :meth:`evaluate` on nested radicals) and the
        result rounded to a float.

        Parameters
        ----------
        name : str
            A key of ``exprs``.
        digits : int, default 40
            Working precision in decimal digits.
        **values
            Every input symbol's value, as for :meth:`evaluate`.

        Returns
        -------
        float
            The value, rounded to double precision.

        Raises
        ------
        ValueError
            If an input symbol has no value.

        Examples
        --------
        >>> from quadlab import symbolic
        >>> symbolic.heavy_ball_two_eigenvalues().numeric("momentum_opt", lam1=1, lam2=9)
        0.25
        """
        import mpmath

        missing = set(self.symbols) - set(values)
        if missing:
            raise ValueError(f"numeric({name!r}) needs values for {sorted(missing)}")
        names = sorted(self.symbols)
        args_sym = tuple(self.symbols[k] for k in names)
        key = (self.exprs[name], args_sym)
        f = _COMPILED.get(key)
        if f is None:
            f = _COMPILED[key] = sp.lambdify(args_sym, self.exprs[name], "mpmath")
        with mpmath.workdps(digits):
            args = []
            for k in names:
                q = sp.nsimplify(values[k], rational=True) if not isinstance(values[k], sp.Basic) else values[k]
                q = sp.Rational(q)
                args.append(mpmath.mpf(int(q.p)) / int(q.q))
            return float(f(*args))


_COMPILED: dict = {}


def _gd_from_pair(lo, hi):
    eta = sp.Symbol("eta", positive=True)
    rho = sp.Max(sp.Abs(1 - eta * lo), sp.Abs(1 - eta * hi))
    (eta_opt,) = sp.solve(sp.Eq(1 - eta * lo, eta * hi - 1), eta)
    rho_opt = sp.simplify(1 - eta_opt * lo)
    return eta, rho, sp.simplify(eta_opt), rho_opt


def gd_two_eigenvalues() -> Derivation:
    """GD on two eigenvalues 0 < λ1 < λ2, derived.

    Returns
    -------
    Derivation
        Symbols lam1, lam2, eta; expressions ``rho`` (any η), ``eta_opt`` = 2/(λ1 + λ2),
        ``rho_opt`` = (λ2 − λ1)/(λ2 + λ1), ``rho_opt_kappa`` the same in κ = λ2/λ1, (κ − 1)/(κ + 1), and
        ``rate_opt`` = rho_opt² (the gap factor).

    Examples
    --------
    >>> from quadlab import symbolic
    >>> symbolic.gd_two_eigenvalues().evaluate("eta_opt", lam1=1, lam2=3, eta=0)
    1/2
    """
    l1, l2, kappa = sp.symbols("lam1 lam2 kappa", positive=True)
    eta, rho, eta_opt, rho_opt = _gd_from_pair(l1, l2)
    rho_k = sp.simplify(rho_opt.subs(l2, kappa * l1))
    return Derivation({"lam1": l1, "lam2": l2, "eta": eta},
                      {"rho": rho, "eta_opt": eta_opt, "rho_opt": rho_opt, "rate_opt": rho_opt**2,
                       "rho_opt_kappa": rho_k})


def _block2_eigs(H, simplify=True):
    """Eigenvalues (smaller, larger) of a symmetric 2×2 matrix from its characteristic polynomial
    λ² + pλ + q: (−p ∓ √(p² − 4q))/2 (the discriminant of a real symmetric matrix is ≥ 0)."""
    lam = sp.Symbol("lam")
    one, p, q = sp.Poly((H - lam * sp.eye(2)).det(), lam).all_coeffs()
    root = sp.sqrt(sp.expand(p**2 - 4 * one * q))
    lo, hi = (-p - root) / (2 * one), (-p + root) / (2 * one)
    return (sp.simplify(lo), sp.simplify(hi)) if simplify else (lo, hi)


def gd_block2() -> Derivation:
    """GD on one 2×2 block H = [[a, b], [b, c]] (a, c > 0, ac > b²), derived.

    Returns
    -------
    Derivation
        ``lam_min``, ``lam_max`` from det(H − λI) = 0, ``eta_opt`` (= 2/(a + c)),
        ``rho_opt`` (= √((a − c)² + 4b²)/(a + c)), ``rate_opt``.

    Examples
    --------
    >>> from quadlab import symbolic
    >>> symbolic.gd_block2().evaluate("rho_opt", a=2, b=0, c=4, eta=0)
    1/3
    """
    a, c = sp.symbols("a c", positive=True)
    b = sp.Symbol("b", real=True)
    H = sp.Matrix([[a, b], [b, c]])
    lo, hi = _block2_eigs(H)
    eta, rho, eta_opt, rho_opt = _gd_from_pair(lo, hi)
    return Derivation({"a": a, "b": b, "c": c, "eta": eta},
                      {"lam_min": lo, "lam_max": hi, "rho": rho, "eta_opt": eta_opt, "rho_opt": rho_opt,
                       "rate_opt": sp.simplify(rho_opt**2)})


def adam_two_eigenvalues() -> Derivation:
    """The Adam theory form on H = diag(λ1, λ2), blocks {1}, {2}, start error (e1, e2) ≠ 0, derived.

    g0 = (λ1e1, λ2e2), so C_{l,1} = C_{l,2} = |e_l|, κ_l = 1, η = min(|e1|, |e2|) and M = diag(1/|e1|, 1/|e2|).
    The bound is attained (rate = bound) and neither depends on λ.

    Returns
    -------
    Derivation
        ``eta``, ``mu1``, ``mu2``, ``rho`` = max_l |1 − η/|e_l|| (= 1 − min/max), ``rate`` = rho²,
        ``r_tilde`` (= max/min), ``bound`` = (1 − 1/r̃)².

    Examples
    --------
    >>> from quadlab import symbolic
    >>> d = symbolic.adam_two_eigenvalues()
    >>> d.evaluate("rate", lam1=1, lam2=9, e1=1, e2=4), d.evaluate("bound", lam1=1, lam2=9, e1=1, e2=4)
    (9/16, 9/16)
    """
    l1, l2 = sp.symbols("lam1 lam2", positive=True)
    e1, e2 = sp.symbols("e1 e2", real=True, nonzero=True)
    g = [l1 * e1, l2 * e2]
    lam = [l1, l2]
    C1 = [sp.Abs(gi) / li for gi, li in zip(g, lam)]
    C2 = C1
    eta = sp.simplify(sp.Min(*C1))
    mu = [li / sp.Abs(gi) for gi, li in zip(g, lam)]
    rho = sp.simplify(sp.Max(*[sp.Abs(1 - eta * m) for m in mu]))
    r_tilde = sp.simplify(sp.Max(*C2) / eta)
    bound = (1 - 1 / r_tilde) ** 2
    return Derivation({"lam1": l1, "lam2": l2, "e1": e1, "e2": e2},
                      {"eta": eta, "mu1": sp.simplify(mu[0]), "mu2": sp.simplify(mu[1]), "rho": rho,
                       "rate": rho**2, "r_tilde": r_tilde, "bound": bound})


def adam_block2() -> Derivation:
    """The Adam theory form on one 2×2 block H = [[a, b], [b, c]] from start error (e1, e2), derived.

    g0 = He, D = diag(|g0|), M = D^{-1/2}HD^{-1/2}.

    Returns
    -------
    Derivation
        ``mu_min``, ``mu_max`` (eigenvalues of M); C1 = min|g0|/λ_max(H), C2 = max|g0|/λ_max(H), ``eta`` = C1,
        ``rho`` = max(|1 − ημ_min|, |1 − ημ_max|), ``rate`` = rho², ``r_tilde`` = C2/C1,
        ``kappa`` = λ_max/λ_min, ``bound`` = (1 − 1/(r̃κ))².

    Examples
    --------
    >>> from quadlab import symbolic
    >>> symbolic.adam_block2().evaluate("r_tilde", a=2, b=0, c=4, e1=1, e2=1)
    2
    """
    a, c = sp.symbols("a c", positive=True)
    b, e1, e2 = sp.symbols("b e1 e2", real=True)
    H = sp.Matrix([[a, b], [b, c]])
    g = H * sp.Matrix([e1, e2])
    d = [sp.Abs(g[0]), sp.Abs(g[1])]
    Dm = sp.diag(1 / sp.sqrt(d[0]), 1 / sp.sqrt(d[1]))
    M = Dm * H * Dm
    # simplify() on expressions full of |g_i| costs seconds and buys nothing for evaluation.
    mu_lo, mu_hi = _block2_eigs(M, simplify=False)
    lo, hi = _block2_eigs(H)
    C1 = sp.Min(*d) / hi
    C2 = sp.Max(*d) / hi
    eta = C1
    rho = sp.Max(sp.Abs(1 - eta * mu_lo), sp.Abs(1 - eta * mu_hi))
    r_tilde = sp.simplify(C2 / C1)
    kappa = hi / lo
    return Derivation({"a": a, "b": b, "c": c, "e1": e1, "e2": e2},
                      {"g1": g[0], "g2": g[1], "mu_min": mu_lo, "mu_max": mu_hi, "lam_min": lo, "lam_max": hi,
                       "C1": C1, "C2": C2, "eta": eta, "rho": rho, "rate": rho**2, "r_tilde": r_tilde,
                       "kappa": kappa, "bound": (1 - 1 / (r_tilde * kappa)) ** 2})


def heavy_ball_two_eigenvalues() -> Derivation:
    """Heavy ball's optimum on eigenvalues 0 < λ1 < λ2, derived.

    With s = √μ, a double root of z² − (1 + μ − ηλ)z + μ at z = ±s means 1 + s² − ηλ = ±2s; asking for z = s at
    λ1 and z = −s at λ2 gives two equations in (η, s).

    Returns
    -------
    Derivation
        ``eta_opt`` (= 4/(√λ1 + √λ2)²), ``momentum_opt`` = s², ``rho_opt`` = s (= (√κ − 1)/(√κ + 1)).

    Examples
    --------
    >>> from quadlab import symbolic
    >>> d = symbolic.heavy_ball_two_eigenvalues()
    >>> d.evaluate("eta_opt", lam1=1, lam2=9), d.evaluate("rho_opt", lam1=1, lam2=9)
    (1/4, 1/2)
    """
    l1, l2 = sp.symbols("lam1 lam2", positive=True)
    eta, s = sp.symbols("eta s", positive=True)
    sols = sp.solve([sp.Eq(1 + s**2 - eta * l1, 2 * s), sp.Eq(1 + s**2 - eta * l2, -2 * s)], [eta, s], dict=True)
    # The branch with 0 < s < 1 is the contracting one; the other has s > 1.
    probe = {l1: 1, l2: 4}
    (sol,) = [x for x in sols if 0 < x[s].subs(probe) < 1]
    return Derivation({"lam1": l1, "lam2": l2},
                      {"eta_opt": sp.simplify(sol[eta]), "momentum_opt": sp.simplify(sol[s] ** 2),
                       "rho_opt": sp.simplify(sol[s])})
