"""numba kernels of :mod:`quadlab._engine.scan` (imported on first use; needs numba).

Every function is compiled with ``fastmath`` off (no contraction to fused multiply-adds, IEEE semantics
for NaN and infinities) and ``error_model="numpy"`` (a zero denominator gives ±inf/NaN, as in numpy), and
cached on disk, so a process pays the compile only once per machine.  The arithmetic and its order are
described in :mod:`quadlab._engine.scan`.
"""

from __future__ import annotations

import math

import numba  # noqa: F401  (numba must import: this module is only loaded when it does)

from .kernels import njit_cached

_PAUSE_WINDOW, _PAUSE_TABLE, _PAUSE_AMBIG, _DONE = 1, 2, 3, 4


_jit = njit_cached


@_jit
def moment(M, r, i, gi, mom, use_m):  # pragma: no cover - compiled
    # Adam's stored first moment m_s ← β1·m_s + g (quadlab.optim's form), or g itself when no run keeps one
    if use_m:
        mi = M[r, i] * mom + gi
        M[r, i] = mi
        return mi
    return gi


@_jit
def sumsq(g, lo, n):  # pragma: no cover - compiled
    # Σ g[lo+i]² for i = 0, 1, …, n−1 in turn, from the first square: ordered.sum_last's order on the squares
    # that the numpy path forms first (Adam-mini's block mean, Layout.block_mean)
    res = g[lo] * g[lo]
    for i in range(1, n):
        res = res + g[lo + i] * g[lo + i]
    return res

@_jit
def norm2(g):  # pragma: no cover - compiled
    # four partial sums: any order is within the band of the module docstring
    n = g.shape[0]
    a0 = a1 = a2 = a3 = 0.0
    i = 0
    while i + 3 < n:
        a0 += g[i] * g[i]
        a1 += g[i + 1] * g[i + 1]
        a2 += g[i + 2] * g[i + 2]
        a3 += g[i + 3] * g[i + 3]
        i += 4
    while i < n:
        a0 += g[i] * g[i]
        i += 1
    return (a0 + a1) + (a2 + a3)

@_jit
def update_row(kind, use_m, pmode, r, e, g, M, V, P, boff, lr, mom, b2, s, et):  # pragma: no cover
    n = e.shape[0]
    if kind == 0:  # GD-kind: e ← e − η g, or e ← e − η (p g)
        if pmode == 0:
            for i in range(n):
                e[i] = e[i] - lr * g[i]
        else:
            p = P[r] if pmode == 2 else P[0]
            for i in range(n):
                e[i] = e[i] - lr * (p[i] * g[i])
    elif kind == 1 or kind == 2:  # m ← μ m + g; heavy ball e ← e − η m, Nesterov e ← e − η (g + μ m)
        m = M[r]
        for i in range(n):
            mi = mom * m[i] + g[i]
            m[i] = mi
            if kind == 1:
                e[i] = e[i] - lr * mi
            else:
                e[i] = e[i] - lr * (g[i] + mom * mi)
    elif kind == 3:  # Adam / RMSprop in the stored form of quadlab.optim
        v = V[r]
        for i in range(n):
            gi = g[i]
            mi = moment(M, r, i, gi, mom, use_m)
            vi = v[i] * b2 + gi * gi
            v[i] = vi
            e[i] = e[i] - (mi / (math.sqrt(vi * s) + et)) * lr
    else:  # Adam-mini: one second moment per block, from the block's mean of g²
        for b in range(boff.shape[0] - 1):
            o, d = boff[b], boff[b + 1] - boff[b]
            vb = V[r, b] * b2 + sumsq(g, o, d) / d
            V[r, b] = vb
            w = math.sqrt(vb * s) + et
            for i in range(o, o + d):
                mi = moment(M, r, i, g[i], mom, use_m)
                e[i] = e[i] - (mi / w) * lr

@_jit
def hvp_first_row(E, G, Rc, o, d, h, Hflat):  # pragma: no cover - compiled
    # the products' first term for the block at coordinates o..o+d, H_b at Hflat[h:]: y[i] = e_0 H_0i
    a0 = Hflat[h:h + d]
    for r in range(Rc):
        x0, y = E[r, o], G[r, o:o + d]
        for i in range(d):
            y[i] = x0 * a0[i]


@_jit
def hvp_rows_from(E, G, Rc, o, d, h, Hflat, j):  # pragma: no cover - compiled
    # the remaining rows j..d−1 of H_b one at a time: y[i] += e_j H_ji, in order
    while j < d:
        aj = Hflat[h + j * d:h + (j + 1) * d]
        for r in range(Rc):
            xj, y = E[r, o + j], G[r, o:o + d]
            for i in range(d):
                y[i] = y[i] + xj * aj[i]
        j += 1


@_jit
def hvp_block(E, G, Rc, b, boff, hoff, Hflat):
    # kernels.matmul_rows' order for block b, out[i] = (…(e_0 H_0i + e_1 H_1i) + …) + e_{d−1} H_{d−1,i}, swept
    # eight rows of H_b and two runs at a time (each y[i] loaded and stored once per eight terms, each H row
    # loaded once per two runs), on 1-D views so that LLVM vectorises the loop over i
    o, d, h = boff[b], boff[b + 1] - boff[b], hoff[b]
    hvp_first_row(E, G, Rc, o, d, h, Hflat)
    j = 1
    while j + 7 < d:
        a1, a2 = Hflat[h + j * d:h + (j + 1) * d], Hflat[h + (j + 1) * d:h + (j + 2) * d]
        a3, a4 = Hflat[h + (j + 2) * d:h + (j + 3) * d], Hflat[h + (j + 3) * d:h + (j + 4) * d]
        a5, a6 = Hflat[h + (j + 4) * d:h + (j + 5) * d], Hflat[h + (j + 5) * d:h + (j + 6) * d]
        a7, a8 = Hflat[h + (j + 6) * d:h + (j + 7) * d], Hflat[h + (j + 7) * d:h + (j + 8) * d]
        r = 0
        while r + 1 < Rc:
            x1, x2, x3, x4 = E[r, o + j], E[r, o + j + 1], E[r, o + j + 2], E[r, o + j + 3]
            x5, x6, x7, x8 = E[r, o + j + 4], E[r, o + j + 5], E[r, o + j + 6], E[r, o + j + 7]
            z1, z2, z3, z4 = E[r + 1, o + j], E[r + 1, o + j + 1], E[r + 1, o + j + 2], E[r + 1, o + j + 3]
            z5, z6, z7, z8 = E[r + 1, o + j + 4], E[r + 1, o + j + 5], E[r + 1, o + j + 6], E[r + 1, o + j + 7]
            y, w = G[r, o:o + d], G[r + 1, o:o + d]
            for i in range(d):
                p1, p2, p3, p4, p5, p6, p7, p8 = a1[i], a2[i], a3[i], a4[i], a5[i], a6[i], a7[i], a8[i]
                y[i] = (((((((y[i] + x1 * p1) + x2 * p2) + x3 * p3) + x4 * p4) + x5 * p5) + x6 * p6) + x7 * p7) \
                    + x8 * p8
                w[i] = (((((((w[i] + z1 * p1) + z2 * p2) + z3 * p3) + z4 * p4) + z5 * p5) + z6 * p6) + z7 * p7) \
                    + z8 * p8
            r += 2
        while r < Rc:
            x1, x2, x3, x4 = E[r, o + j], E[r, o + j + 1], E[r, o + j + 2], E[r, o + j + 3]
            x5, x6, x7, x8 = E[r, o + j + 4], E[r, o + j + 5], E[r, o + j + 6], E[r, o + j + 7]
            y = G[r, o:o + d]
            for i in range(d):
                y[i] = (((((((y[i] + x1 * a1[i]) + x2 * a2[i]) + x3 * a3[i]) + x4 * a4[i]) + x5 * a5[i]) + x6 * a6[i]) \
                    + x7 * a7[i]) + x8 * a8[i]
            r += 1
        j += 8
    hvp_rows_from(E, G, Rc, o, d, h, Hflat, j)


@_jit
def hvp_block_wide(E, G, Rc, b, boff, hoff, Hflat):  # pragma: no cover - compiled
    # hvp_block's sums in the same order, for a block too large to stay in L1 (d > 64): swept four rows of H_b
    # and four runs at a time, so that H_b streams from L2/L3 once per four runs, not per two (blocks of 500,
    # one thread, 4 runs: 123 µs per step against 144 µs; two threads streaming H at once are bound by L3)
    o, d, h = boff[b], boff[b + 1] - boff[b], hoff[b]
    hvp_first_row(E, G, Rc, o, d, h, Hflat)
    j = 1
    while j + 3 < d:
        a1, a2 = Hflat[h + j * d:h + (j + 1) * d], Hflat[h + (j + 1) * d:h + (j + 2) * d]
        a3, a4 = Hflat[h + (j + 2) * d:h + (j + 3) * d], Hflat[h + (j + 3) * d:h + (j + 4) * d]
        r = 0
        while r + 3 < Rc:
            x1, x2, x3, x4 = E[r, o + j], E[r, o + j + 1], E[r, o + j + 2], E[r, o + j + 3]
            u1, u2, u3, u4 = E[r + 1, o + j], E[r + 1, o + j + 1], E[r + 1, o + j + 2], E[r + 1, o + j + 3]
            v1, v2, v3, v4 = E[r + 2, o + j], E[r + 2, o + j + 1], E[r + 2, o + j + 2], E[r + 2, o + j + 3]
            z1, z2, z3, z4 = E[r + 3, o + j], E[r + 3, o + j + 1], E[r + 3, o + j + 2], E[r + 3, o + j + 3]
            y, w, q, s = G[r, o:o + d], G[r + 1, o:o + d], G[r + 2, o:o + d], G[r + 3, o:o + d]
            for i in range(d):
                p1, p2, p3, p4 = a1[i], a2[i], a3[i], a4[i]
                y[i] = (((y[i] + x1 * p1) + x2 * p2) + x3 * p3) + x4 * p4
                w[i] = (((w[i] + u1 * p1) + u2 * p2) + u3 * p3) + u4 * p4
                q[i] = (((q[i] + v1 * p1) + v2 * p2) + v3 * p3) + v4 * p4
                s[i] = (((s[i] + z1 * p1) + z2 * p2) + z3 * p3) + z4 * p4
            r += 4
        while r < Rc:
            x1, x2, x3, x4 = E[r, o + j], E[r, o + j + 1], E[r, o + j + 2], E[r, o + j + 3]
            y = G[r, o:o + d]
            for i in range(d):
                y[i] = (((y[i] + x1 * a1[i]) + x2 * a2[i]) + x3 * a3[i]) + x4 * a4[i]
            r += 1
        j += 4
    hvp_rows_from(E, G, Rc, o, d, h, Hflat, j)


@_jit
def swap(A, r, q):  # pragma: no cover - compiled
    for i in range(A.shape[1]):
        A[r, i] = A[q, i]

@_jit
def swap_col(A, r, q):  # pragma: no cover - compiled
    for i in range(A.shape[0]):
        A[i, r] = A[i, q]


@_jit
def move(A, r, q, large):  # pragma: no cover - compiled
    # run q's values into run r's slot: a row of a run-major array (large blocks), else a column
    if large:
        swap(A, r, q)
    else:
        swap_col(A, r, q)


@_jit
def sumsq_col(G, o, d, r):  # pragma: no cover - compiled
    # sumsq() down column r of a run-minor array (Adam-mini's block mean, small blocks)
    res = G[o, r] * G[o, r]
    for i in range(1, d):
        res = res + G[o + i, r] * G[o + i, r]
    return res


@_jit
def expand(X, row, v, n, Rc):  # pragma: no cover - compiled
    # X[row] laid out like a run-minor (n, R) array, every coordinate of run r holding v[r]
    R = X.shape[1] // n
    for i in range(n):
        base = i * R
        for r in range(Rc):
            X[row, base + r] = v[r]


@_jit
def update_flat(kind, use_m, pmode, E, G, M, V, P, X, m):  # pragma: no cover - compiled
    """step_cols' update of the first m elements of run-minor (n, R) arrays (all the live runs' coordinates,
    and dead columns' below them) as one loop over the flat arrays, the per-run values spread out in X (rows
    lr, μ or β1, β2, s_t, e_t, p): the same operations on the same operands as step_cols.  One long loop
    instead of n loops over R runs: at Case 3's n = 9 and 16 runs the n short loops each paid LLVM's run-time
    overlap checks, and took 400 ns per step against 75 ns."""
    Ef, Gf = E.reshape(-1), G.reshape(-1)
    lr, mom, b2, s, e = X[0], X[1], X[2], X[3], X[4]
    if kind == 0:
        if pmode == 0:
            for f in range(m):
                Ef[f] = Ef[f] - lr[f] * Gf[f]
        else:
            p = X[5] if pmode == 1 else P.reshape(-1)
            for f in range(m):
                Ef[f] = Ef[f] - lr[f] * (p[f] * Gf[f])
    elif kind == 1:
        Mf = M.reshape(-1)
        for f in range(m):
            mi = mom[f] * Mf[f] + Gf[f]
            Mf[f] = mi
            Ef[f] = Ef[f] - lr[f] * mi
    elif kind == 2:
        Mf = M.reshape(-1)
        for f in range(m):
            mi = mom[f] * Mf[f] + Gf[f]
            Mf[f] = mi
            Ef[f] = Ef[f] - lr[f] * (Gf[f] + mom[f] * mi)
    elif use_m:
        Mf, Vf = M.reshape(-1), V.reshape(-1)
        for f in range(m):
            gi = Gf[f]
            mi = Mf[f] * mom[f] + gi
            Mf[f] = mi
            vi = Vf[f] * b2[f] + gi * gi
            Vf[f] = vi
            Ef[f] = Ef[f] - (mi / (math.sqrt(vi * s[f]) + e[f])) * lr[f]
    else:
        Vf = V.reshape(-1)
        for f in range(m):
            gi = Gf[f]
            vi = Vf[f] * b2[f] + gi * gi
            Vf[f] = vi
            Ef[f] = Ef[f] - (gi / (math.sqrt(vi * s[f]) + e[f])) * lr[f]


@_jit
def step_cols(kind, use_m, pmode, diag, E, G, M, V, P, Hflat, hoff, boff, Hdiag, lr, mom, b2, sv, ev, s2,
              c0, c1, do_update):  # pragma: no cover - compiled
    """One step of the runs in columns c0..c1 of run-minor (n, R) arrays: update (unless done already by
    update_flat), product, squared norm.  Every loop runs over the runs innermost, so it vectorises across runs
    without reordering any run's sum."""
    n = E.shape[0]
    if not do_update:
        pass
    elif kind == 0:
        if pmode == 0:
            for i in range(n):
                for r in range(c0, c1):
                    E[i, r] = E[i, r] - lr[r] * G[i, r]
        elif pmode == 1:
            for i in range(n):
                p = P[i, 0]
                for r in range(c0, c1):
                    E[i, r] = E[i, r] - lr[r] * (p * G[i, r])
        else:
            for i in range(n):
                for r in range(c0, c1):
                    E[i, r] = E[i, r] - lr[r] * (P[i, r] * G[i, r])
    elif kind == 1:
        for i in range(n):
            for r in range(c0, c1):
                mi = mom[r] * M[i, r] + G[i, r]
                M[i, r] = mi
                E[i, r] = E[i, r] - lr[r] * mi
    elif kind == 2:
        for i in range(n):
            for r in range(c0, c1):
                mi = mom[r] * M[i, r] + G[i, r]
                M[i, r] = mi
                E[i, r] = E[i, r] - lr[r] * (G[i, r] + mom[r] * mi)
    elif kind == 3:
        if use_m:
            for i in range(n):
                for r in range(c0, c1):
                    gi = G[i, r]
                    mi = M[i, r] * mom[r] + gi
                    M[i, r] = mi
                    vi = V[i, r] * b2[r] + gi * gi
                    V[i, r] = vi
                    E[i, r] = E[i, r] - (mi / (math.sqrt(vi * sv[r]) + ev[r])) * lr[r]
        else:
            for i in range(n):
                for r in range(c0, c1):
                    gi = G[i, r]
                    vi = V[i, r] * b2[r] + gi * gi
                    V[i, r] = vi
                    E[i, r] = E[i, r] - (gi / (math.sqrt(vi * sv[r]) + ev[r])) * lr[r]
    else:
        for b in range(boff.shape[0] - 1):
            o, d = boff[b], boff[b + 1] - boff[b]
            for r in range(c0, c1):
                vb = V[b, r] * b2[r] + sumsq_col(G, o, d, r) / d
                V[b, r] = vb
                w = math.sqrt(vb * sv[r]) + ev[r]
                for i in range(o, o + d):
                    gi = G[i, r]
                    if use_m:
                        mi = M[i, r] * mom[r] + gi
                        M[i, r] = mi
                    else:
                        mi = gi
                    E[i, r] = E[i, r] - (mi / w) * lr[r]
    if diag:
        for i in range(n):
            h = Hdiag[i]
            for r in range(c0, c1):
                G[i, r] = E[i, r] * h
    else:
        nb = boff.shape[0] - 1
        all3 = True
        for b in range(nb):
            all3 = all3 and boff[b + 1] - boff[b] == 3
        if all3:  # every block of 3 (the paper's simple cases): one pass over the runs per
            # block, its three outputs (the same three terms each) and their squares into the norm beside them
            for r in range(c0, c1):
                s2[r] = 0.0
            for b in range(nb):
                o, h = boff[b], hoff[b]
                a00, a10, a20 = Hflat[h], Hflat[h + 3], Hflat[h + 6]
                a01, a11, a21 = Hflat[h + 1], Hflat[h + 4], Hflat[h + 7]
                a02, a12, a22 = Hflat[h + 2], Hflat[h + 5], Hflat[h + 8]
                for r in range(c0, c1):
                    e0, e1, e2 = E[o, r], E[o + 1, r], E[o + 2, r]
                    g0 = (e0 * a00 + e1 * a10) + e2 * a20
                    g1 = (e0 * a01 + e1 * a11) + e2 * a21
                    g2 = (e0 * a02 + e1 * a12) + e2 * a22
                    G[o, r] = g0
                    G[o + 1, r] = g1
                    G[o + 2, r] = g2
                    s2[r] += (g0 * g0 + g1 * g1) + g2 * g2
            return
        for b in range(nb):
            o, d, h = boff[b], boff[b + 1] - boff[b], hoff[b]
            for i in range(d):
                a = Hflat[h + i]
                for r in range(c0, c1):
                    G[o + i, r] = E[o, r] * a
                for j in range(1, d):
                    a = Hflat[h + j * d + i]
                    for r in range(c0, c1):
                        G[o + i, r] = G[o + i, r] + E[o + j, r] * a
    for r in range(c0, c1):
        s2[r] = 0.0
    for i in range(n):
        for r in range(c0, c1):
            s2[r] += G[i, r] * G[i, r]


def _scan(ints, E, G, M, V, P, Hflat, hoff, boff, Hdiag, lr, mom, b2, which, thr, div, ids, dec, s2, sv, ev,
          rec, snapE, snapG, tab_s, tab_e, stop, status, to_tol, band, lo2, hi2, X):  # pragma: no cover - compiled
    # ints: kind, use_m, pmode, large, diag, tol_on, k, steps, phase, Rc, jrec, j_lo, t_lo, t_hi
    kind, use_m, pmode, large, diag, tol_on = ints[0], ints[1], ints[2], ints[3], ints[4], ints[5]
    k, steps, phase, Rc, jrec, j_lo, t_lo, t_hi = ints[6], ints[7], ints[8], ints[9], ints[10], ints[11], \
        ints[12], ints[13]
    nrec, W = rec.shape[0], snapE.shape[0]
    delta, absb = band[0], band[1]
    n = E.shape[0]  # (run-minor; unused run-major)
    spread = -1  # the live-run count X was last spread out for (-1: not yet in this call)
    while True:
        if phase == 0:
            if jrec < nrec and rec[jrec] == k:
                slot = jrec - j_lo
                if slot >= W:
                    return k, _PAUSE_WINDOW, Rc, jrec
                if large:
                    for r in range(Rc):
                        snapE[slot, ids[r]] = E[r]
                        snapG[slot, ids[r]] = G[r]
                else:
                    for r in range(Rc):
                        snapE[slot, ids[r]] = E[:, r]
                        snapG[slot, ids[r]] = G[:, r]
                jrec += 1
            amb = False
            for r in range(Rc):
                dec[r] = 0
                if lo2[r] < s2[r] <= hi2[r]:  # certainly neither converged nor diverged (scan._fast_bounds)
                    continue
                q = math.sqrt(s2[r])
                if not q <= 1.7976931348623157e308:
                    amb = True
                    continue
                lo, hi = q * (1.0 - delta) - absb, q * (1.0 + delta) + absb
                if lo > div[r]:
                    dec[r] = 2
                elif not hi <= div[r]:
                    amb = True
                elif tol_on:
                    if hi <= thr[r]:
                        dec[r] = 1
                    elif not lo > thr[r]:
                        amb = True
            if amb:
                return k, _PAUSE_AMBIG, Rc, jrec
            phase = 1
        if phase == 1:  # stop the decided runs (dec: 1 converged, 2 diverged); the last live row moves in
            for r in range(Rc - 1, -1, -1):
                if dec[r] != 0:
                    i = ids[r]
                    stop[i] = k
                    status[i] = dec[r]
                    if dec[r] == 1:
                        to_tol[i] = k
                    q = Rc - 1
                    if r != q:  # the last active run takes the finished one's place
                        move(E, r, q, large)
                        move(G, r, q, large)
                        if use_m:
                            move(M, r, q, large)
                        if kind >= 3:
                            move(V, r, q, large)
                        if pmode == 2:
                            move(P, r, q, large)
                    if r != q:
                        lr[r], mom[r], b2[r], which[r] = lr[q], mom[q], b2[q], which[q]
                        thr[r], div[r], ids[r], s2[r] = thr[q], div[q], ids[q], s2[q]
                        lo2[r], hi2[r] = lo2[q], hi2[q]
                    Rc = q
            phase = 2
        if Rc == 0 or k >= steps:
            return k, _DONE, Rc, jrec
        t = k + 1
        if kind >= 3 and t >= t_hi:
            return k, _PAUSE_TABLE, Rc, jrec
        ti = t - t_lo
        if large:
            for r in range(Rc):
                s = tab_s[ti, which[r]] if kind >= 3 else 0.0
                et = tab_e[ti, which[r]] if kind >= 3 else 0.0
                update_row(kind, use_m, pmode, r, E[r], G[r], M, V, P, boff, lr[r], mom[r], b2[r], s, et)
            for b in range(boff.shape[0] - 1):  # (run-major is never the diagonal layout: scan.run)
                if boff[b + 1] - boff[b] > 64:
                    hvp_block_wide(E, G, Rc, b, boff, hoff, Hflat)
                else:
                    hvp_block(E, G, Rc, b, boff, hoff, Hflat)
            for r in range(Rc):
                s2[r] = norm2(G[r])
        else:  # run-minor: the update over the flat arrays, then the product in chunks of 64 runs
            flat = kind != 4 and X.shape[0] == 6  # (X is a placeholder where the spread would be too large)
            if kind >= 3:
                for r in range(Rc):
                    sv[r] = tab_s[ti, which[r]]
                    ev[r] = tab_e[ti, which[r]]
            if flat:
                if spread != Rc:  # on entry and after runs stopped: the per-run values spread out again
                    expand(X, 0, lr, n, Rc)
                    expand(X, 1, mom, n, Rc)
                    expand(X, 2, b2, n, Rc)
                    if pmode == 1:  # one p per coordinate, the same for every run
                        for i in range(n):
                            for r in range(Rc):
                                X[5, i * E.shape[1] + r] = P[i, 0]
                    spread = Rc
                if kind >= 3:
                    expand(X, 3, sv, n, Rc)
                    expand(X, 4, ev, n, Rc)
                update_flat(kind, use_m, pmode, E, G, M, V, P, X, (n - 1) * E.shape[1] + Rc)
            nch = (Rc + 63) // 64
            for c in range(nch):
                c0, c1 = c * 64, min(Rc, c * 64 + 64)
                step_cols(kind, use_m, pmode, diag, E, G, M, V, P, Hflat, hoff, boff, Hdiag, lr, mom, b2, sv, ev,
                          s2, c0, c1, not flat)
        k = t
        phase = 0


try:
    scan = numba.njit(nogil=True, error_model="numpy", cache=True)(_scan)
except RuntimeError:  # no writable cache location
    scan = numba.njit(nogil=True, error_model="numpy")(_scan)
