"""Multi-step GPU kernel for small problems: one thread block per run, the whole iteration in one launch.

On a GPU the iterate path launches a handful of kernels per step; on the paper's small problems (Case 3:
n = 9, 1,024 runs, 2,000 steps) the launches, not the arithmetic, set the time.  :func:`run` instead launches
one CUDA kernel (a ``cupy.RawKernel``) for all steps: thread block r holds run r, thread i holds coordinate
i of the error x = w − w* (and the optimizer's state for it) in registers, and per step

    g_i = Σ_{j<d} x_{s_i + j} · H_i[j]      (H_i: row i of the block holding i, s_i its first coordinate;
                                             j = 0, 1, …, d − 1 in turn, every product rounded before the add)
    ‖g‖², ½ xᵀg: by thread 0, each block's d terms in turn, the blocks of a group in turn, then the groups
    stop test on ‖g‖ (converged ≤ thr, diverged > div or not finite), recording at the record steps
    the update of the optimizer, coordinate by coordinate (:data:`UPDATES`).

Same arithmetic as the numpy path.  The product is the runner's fixed order (:mod:`quadlab._engine.ordered`;
H is stored exactly symmetric, so row i equals column i), the update is the optimizer's stored form with
the same operands in the same order (Adam's s_t, e_t come from the host :class:`quadlab.optim.AdamScalars`,
as a table), and the kernel is compiled with ``--fmad=false`` (no contraction to fused multiply-adds;
CUDA's double and single division and square root are correctly rounded by default, as numpy's are).  So
the iterates carry the numpy path's bits.  The squared norms and ½ xᵀg are summed in the order above, which
is the numpy path's own (``Layout.rowdot``, :func:`quadlab._engine.ordered.block_dot`), and the thresholds
are the runner's (:func:`quadlab._engine.runargs.thresholds`, computed on the host): the recorded ‖∇f‖ and
f − f*, and the stop steps, are the numpy path's bits too, on any CPU.

The statements of :data:`UPDATES` are the single source of the per-coordinate arithmetic: :func:`cuda_source`
pastes them into the kernel, and :func:`emulate` evaluates the same text on numpy arrays (every run and
coordinate at once, the same IEEE operations), with the kernel's loops transcribed beside it.  The tests
check the emulation against the numpy iterate path, so CI checks the kernel's arithmetic without a GPU; they
also run the CUDA text itself on host threads (g++ behind a small shim, where g++ exists) and compile it with
nvcc (where the toolkit exists).  That ``cupy.RawKernel`` on a device reproduces the emulation is checked only
where cupy and a GPU exist (``tests/test_gpu_scan.py``, marked ``gpu``).

Limits: n ≤ 1,024 (one thread per coordinate; a global rotation is one dense block), optimizers gd,
heavy_ball, nesterov (numeric learning rates or the named ones, resolved on the host), adam and rmsprop (not
adam_mini: its second moment is a block mean).  Thread 0 sums the norms alone, which is cheap at Case 3's
n = 9 and slow for n in the hundreds.
"""

from __future__ import annotations

import functools

import numpy as np

from .runargs import thresholds

__all__ = ["UPDATES", "MAX_N", "cuda_source", "prepare", "emulate", "launch", "run"]

#: coordinates per run (threads per block)
MAX_N = 1024

#: per-coordinate update, one statement per line, in the numpy path's operation order: x the error, g the
#: gradient, m and v the moments, w a scratch value; lr, b1, b2, mu per run, s and et Adam's per-step scalars
UPDATES = {
    "adam": ("m = m * b1 + g", "v = v * b2 + g * g", "w = sqrt(v * s) + et", "x = x - (m / w) * lr"),
    # every run has β1 = 0: the numpy path stores no first moment and divides g itself
    "adam_nom": ("v = v * b2 + g * g", "w = sqrt(v * s) + et", "x = x - (g / w) * lr"),
    "gd": ("x = x - lr * g",),
    "heavy_ball": ("m = mu * m + g", "x = x - lr * m"),
    "nesterov": ("m = mu * m + g", "x = x - lr * (g + mu * m)"),
}

# per-run hyperparameters, columns of the (R, 4) array hp
_HP = ("lr", "b1", "b2", "mu")

_KERNEL = r"""
typedef {T} T;

extern "C" __global__ void quadlab_scan(
    const T* __restrict__ H, const long long* __restrict__ hoff, const int* __restrict__ bstart,
    const int* __restrict__ bsize, const int* __restrict__ seg_end, const int* __restrict__ seg_new_group,
    const int nseg, const int n, const long long steps,
    T* __restrict__ X, T* __restrict__ M, T* __restrict__ V, const T* __restrict__ hp,
    const T* __restrict__ sched, const int* __restrict__ which, const int nU,
    const double* __restrict__ thr, const double* __restrict__ dv, const int tol_on,
    const int* __restrict__ rec_slot, const int T_rec, double* __restrict__ gap, double* __restrict__ gnorm,
    long long* __restrict__ stop_out, int* __restrict__ status_out)
{{
    extern __shared__ unsigned char smem_[];
    T* xs = reinterpret_cast<T*>(smem_);
    T* gs = xs + n;
    __shared__ int flag;
    const int r = blockIdx.x;
    const int i = threadIdx.x;
    const bool own = i < n;
    T x = 0, m = 0, v = 0, g = 0;
    const T lr = hp[4 * r + 0], b1 = hp[4 * r + 1], b2 = hp[4 * r + 2], mu = hp[4 * r + 3];
    (void)lr; (void)b1; (void)b2; (void)mu;  // each update reads only some of them
    if (own) {{
        x = X[(long long)r * n + i]; m = M[(long long)r * n + i]; v = V[(long long)r * n + i];
        xs[i] = x;
    }}
    __syncthreads();
    for (long long k = 0; ; ++k) {{
        if (own) {{
            const T* h = H + hoff[i];
            const int s0 = bstart[i], d = bsize[i];
            T acc = xs[s0] * h[0];
            for (int j = 1; j < d; ++j) acc = acc + xs[s0 + j] * h[j];
            g = acc;
            gs[i] = g;
        }}
        __syncthreads();
        if (i == 0) {{
            const int slot = rec_slot[k];
            // Σ g², Σ x·g: each block's terms in turn, the blocks of a group in turn, then the groups; each
            // sum starts from its first term (0 + t would turn −0 into +0, which the numpy path does not)
            T tot = 0, gtot = 0;
            int a = 0, q = 0;
            bool first_group = true;
            while (q < nseg) {{
                T grp = 0, ggrp = 0;
                bool first_seg = true;
                do {{
                    const int e = seg_end[q];
                    T part = gs[a] * gs[a];
                    for (int j = a + 1; j < e; ++j) part = part + gs[j] * gs[j];
                    T gpart = 0;
                    if (slot >= 0) {{
                        gpart = xs[a] * gs[a];
                        for (int j = a + 1; j < e; ++j) gpart = gpart + xs[j] * gs[j];
                    }}
                    if (first_seg) {{ grp = part; ggrp = gpart; first_seg = false; }}
                    else {{ grp = grp + part; ggrp = ggrp + gpart; }}
                    a = e;
                    ++q;
                }} while (q < nseg && !seg_new_group[q]);
                if (first_group) {{ tot = grp; gtot = ggrp; first_group = false; }}
                else {{ tot = tot + grp; gtot = gtot + ggrp; }}
            }}
            const T nrm = sqrt(tot);
            const bool bad = !isfinite(nrm) || (double)nrm > dv[r];
            const bool good = tol_on && !bad && (double)nrm <= thr[r];
            if (slot >= 0) {{
                gap[(long long)r * T_rec + slot] = (double)((T)0.5 * gtot);
                gnorm[(long long)r * T_rec + slot] = (double)nrm;
            }}
            flag = good ? 1 : (bad ? 2 : (k == steps ? 3 : 0));
            if (flag) {{ stop_out[r] = k; status_out[r] = flag; }}
        }}
        __syncthreads();
        if (flag) break;
        if (own) {{
            const T s = sched[2 * ((k) * nU + which[r]) + 0];
            const T et = sched[2 * ((k) * nU + which[r]) + 1];
            (void)s; (void)et;
{UPDATE}
            xs[i] = x;
        }}
        __syncthreads();
    }}
    if (own) {{
        X[(long long)r * n + i] = x; M[(long long)r * n + i] = m; V[(long long)r * n + i] = v;
    }}
}}
"""

def cuda_source(kind: str, dtype: str) -> str:
    """The kernel's CUDA C++ source for update ``kind`` (a key of :data:`UPDATES`) and ``dtype``."""
    if kind not in UPDATES:
        raise ValueError(f"gpu_scan: no kernel for {kind!r}; kinds are {sorted(UPDATES)}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"gpu_scan: dtype must be float32 or float64, got {dtype!r}")
    lines = UPDATES[kind]
    scratch = ["T w;"] if any(s.startswith("w = ") for s in lines) else []
    body = "\n".join(f"            {s}" for s in scratch + [f"{s};" for s in lines])
    return _KERNEL.format(T="double" if dtype == "float64" else "float", UPDATE=body)


class Prepared:
    """Everything the kernel (or its emulation) reads, on the host: see :func:`prepare`."""

    __slots__ = ("kind", "dtype", "n", "R", "steps", "H", "hoff", "bstart", "bsize", "seg_end", "seg_new_group",
                 "X", "M", "V", "hp", "sched", "which", "thr", "div", "tol_on", "rec", "rec_slot", "E0", "config",
                 "g0n")


def _geometry(problem, dtype):
    """Packed rows of H in layout order, and the norm segments (blocks) with the start of each group."""
    from .layout import Layout

    lay = Layout(problem)
    rows, hoff, bstart, bsize, seg_end, new_group = [], [], [], [], [], []
    off = 0
    c = 0
    if problem._diag is not None:
        diag = problem.backend.to_numpy(problem._diag).astype(dtype)
        for i in range(problem.n):
            rows.append(diag[i:i + 1])
            hoff.append(off)
            off += 1
            bstart.append(i)
            bsize.append(1)
        seg_end.append(problem.n)  # the numpy path's rowdot: one segment of all n (the diagonal pseudo-group)
        new_group.append(1)
    else:
        for g in problem.groups:
            H = problem.backend.to_numpy(g.H).astype(dtype)
            if not np.array_equal(H, np.swapaxes(H, 1, 2)):
                raise ValueError("gpu_scan: the stored blocks must be exactly symmetric (row i = column i)")
            for b in range(g.k):
                for j in range(g.size):
                    rows.append(H[b, j])
                    hoff.append(off)
                    off += g.size
                    bstart.append(c + b * g.size)
                    bsize.append(g.size)
                seg_end.append(c + (b + 1) * g.size)
                new_group.append(1 if b == 0 else 0)
            c += g.k * g.size
    return (lay, np.concatenate(rows).astype(dtype), np.asarray(hoff, np.int64), np.asarray(bstart, np.int32),
            np.asarray(bsize, np.int32), np.asarray(seg_end, np.int32), np.asarray(new_group, np.int32))


def prepare(problem, optimizer, w0=None, seeds=None, steps: int = 1000, tol: float | None = None, record="log"):
    """Check the arguments as :func:`quadlab.run` does and build the kernel's inputs (host arrays).

    Raises
    ------
    ValueError
        For anything :func:`quadlab.run` refuses, an optimizer without a kernel, more than :data:`MAX_N`
        coordinates, or a dtype other than float32/float64.
    """
    from .. import runner
    from ..optim import AdamScalars, Optimizer
    from .context import RunContext

    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"optimizer must be built by quadlab.optim (e.g. quadlab.optim.adam(...)), got {optimizer!r}")
    if optimizer.name not in ("gd", "heavy_ball", "nesterov", "adam", "rmsprop"):
        raise ValueError(f"gpu_scan: no multi-step kernel for {optimizer.name}; it has gd, heavy_ball, nesterov, adam "
                         "and rmsprop (use quadlab.run for the others)")
    if problem.n > MAX_N:
        raise ValueError(f"gpu_scan: n = {problem.n} coordinates exceed the kernel's {MAX_N} threads per run; "
                         "use quadlab.run(method='iterate') for larger problems")
    steps = runner._check_steps(steps)
    if tol is not None and not (np.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"tol is relative to ||grad f(w0)|| and must lie in (0, 1), got {tol!r}")
    seeds = runner._check_seeds(seeds)
    if w0 is not None and len(seeds) > 1 and np.ndim(w0) == 1:
        raise ValueError("seeds only draw starting points; with a single given w0 leave seeds at its default")
    dtype = np.dtype(problem.backend.dtype_name)
    p = Prepared()
    p.kind, p.dtype, p.n, p.steps = optimizer.name, dtype, problem.n, steps
    grid = optimizer.grid()
    C, S = optimizer.n_configs, len(seeds)
    R = p.R = C * S
    config = {k: np.repeat(v, S) for k, v in grid.items()}
    config["seed"] = np.tile(np.asarray(seeds, dtype=np.int64), C)
    p.config = config
    E0 = p.E0 = runner._starts(problem, w0, seeds, C)
    p.rec = runner.record_steps(record, steps)
    lay, p.H, p.hoff, p.bstart, p.bsize, p.seg_end, p.seg_new_group = _geometry(problem, dtype)
    tree = lay.split(problem.backend.asarray(E0))
    p.X = np.concatenate([np.transpose(problem.backend.to_numpy(x), (1, 0, 2)).reshape(R, -1) for x in tree],
                         axis=1).astype(dtype)
    g0_host = problem.backend.to_numpy(lay.merge(lay.hvp(tree))).astype(np.float64)
    p.g0n = lay.host_norms(g0_host)
    p.thr, p.div = thresholds(lay, g0_host, tol, runner.DIVERGENCE_FACTOR)  # the runner's, one definition
    p.tol_on = tol is not None
    p.M = np.zeros_like(p.X)
    p.V = np.zeros_like(p.X)
    hp = np.zeros((R, len(_HP)))
    host = {k: np.asarray(v, dtype=np.float64) for k, v in config.items() if k != "seed"}
    p.sched = np.zeros((steps, 1, 2), dtype=dtype)
    p.which = np.zeros(R, dtype=np.int32)
    if optimizer.name in ("adam", "rmsprop"):
        hp[:, 0], hp[:, 1], hp[:, 2] = host["lr"], host["b1"], host["b2"]
        sc = AdamScalars(host["b1"], host["b2"], host["eps"], optimizer.options["bias_correction"])
        U = sc.values.shape[0]
        first = np.array([np.flatnonzero(sc.which == u)[0] for u in range(U)])
        p.sched = np.zeros((steps, U, 2), dtype=dtype)
        for t in range(1, steps + 1):
            s, e = sc.at(t)
            p.sched[t - 1, :, 0] = np.broadcast_to(np.asarray(s, dtype=np.float64), (R,))[first]
            p.sched[t - 1, :, 1] = np.broadcast_to(np.asarray(e, dtype=np.float64), (R,))[first]
        p.which = sc.which.astype(np.int32)
        if (host["b1"] == 0.0).all():
            p.kind = "adam_nom"
        else:
            p.kind = "adam"
    else:
        ctx = RunContext(problem, None, g0_host, E0 + problem.optimum_host, False)
        ctx.host_hp = host
        hp[:, 0] = ctx.lr(optimizer.options)
        if optimizer.name != "gd":
            hp[:, 3] = host["momentum"]
    p.hp = hp.astype(dtype)  # numpy casts a Python float or a float64 per-run array to the leaves' dtype alike
    p.rec_slot = np.full(steps + 1, -1, dtype=np.int32)
    p.rec_slot[p.rec] = np.arange(p.rec.size, dtype=np.int32)
    return p


def emulate(p: Prepared):
    """The kernel, run on the host with numpy: the same statements (:data:`UPDATES`) on every run and
    coordinate at once, and the kernel's loops transcribed (product over j in turn, norms block by block).

    Returns (gap, gnorm, stop, status, x) as :func:`launch` does: x (R, n) the error at each run's stop step,
    in layout order; ``p.X``, ``p.M``, ``p.V`` are left alone."""
    dt = p.dtype
    R, n = p.R, p.n
    x, m, v = p.X.copy(), p.M.copy(), p.V.copy()
    dmax = int(p.bsize.max())
    # H_i[j] for every coordinate i, padded to dmax (the padding is never read: j < bsize[i] below)
    Hp = np.zeros((n, dmax), dtype=dt)
    for i in range(n):
        Hp[i, :p.bsize[i]] = p.H[p.hoff[i]:p.hoff[i] + p.bsize[i]]
    lr, b1, b2, mu = (p.hp[:, j:j + 1] for j in range(len(_HP)))
    T_rec = p.rec.size
    gap = np.full((R, T_rec), np.nan)
    gnorm = np.full((R, T_rec), np.nan)
    stop = np.zeros(R, dtype=np.int64)
    status = np.zeros(R, dtype=np.int32)
    live = np.arange(R)
    code = compile("\n".join(UPDATES[p.kind]), "<gpu_scan.UPDATES>", "exec")
    starts = np.flatnonzero(p.seg_new_group)
    seg_start = np.r_[0, p.seg_end[:-1]]
    with np.errstate(all="ignore"):
        for k in range(p.steps + 1):
            xl = x[live]
            g = xl[:, p.bstart] * Hp[:, 0]
            for j in range(1, dmax):
                on = np.flatnonzero(j < p.bsize)
                g[:, on] = g[:, on] + xl[:, p.bstart[on] + j] * Hp[on, j]
            slot = int(p.rec_slot[k])

            def total(a, b):
                out = None
                for gi, q0 in enumerate(starts):
                    q1 = starts[gi + 1] if gi + 1 < starts.size else p.seg_end.size
                    grp = None
                    for q in range(q0, q1):
                        lo, hi = seg_start[q], p.seg_end[q]
                        part = a[:, lo] * b[:, lo]
                        for jj in range(lo + 1, hi):
                            part = part + a[:, jj] * b[:, jj]
                        grp = part if grp is None else grp + part
                    out = grp if out is None else out + grp
                return out

            nrm = np.sqrt(total(g, g))
            bad = ~np.isfinite(nrm) | (nrm.astype(np.float64) > p.div[live])
            good = ~bad & (nrm.astype(np.float64) <= p.thr[live]) if p.tol_on else np.zeros_like(bad)
            if slot >= 0:
                gap[live, slot] = (dt.type(0.5) * total(xl, g)).astype(np.float64)
                gnorm[live, slot] = nrm.astype(np.float64)
            flag = np.where(good, 1, np.where(bad, 2, 3 if k == p.steps else 0))
            done = flag > 0
            stop[live[done]] = k
            status[live[done]] = flag[done]
            keep = ~done
            live, xl, g = live[keep], xl[keep], g[keep]
            if live.size == 0:
                break
            which = p.which[live]
            ns = {"x": xl, "g": g, "m": m[live], "v": v[live], "w": None, "sqrt": np.sqrt,
                  "lr": lr[live], "b1": b1[live], "b2": b2[live], "mu": mu[live],
                  "s": p.sched[k, which, 0][:, None], "et": p.sched[k, which, 1][:, None]}
            exec(code, {"__builtins__": {}}, ns)
            x[live], m[live], v[live] = ns["x"], ns["m"], ns["v"]
    return gap, gnorm, stop, status, x


@functools.cache
def _kernel(kind: str, dtype: str):
    import cupy

    return cupy.RawKernel(cuda_source(kind, dtype), "quadlab_scan", options=("--fmad=false",))


def launch(p: Prepared, threads: int | None = None):
    """Run the kernel on the current CUDA device (cupy); returns host (gap, gnorm, stop, status, x): the
    recorded f − f* and ‖∇f‖ (R, T), the stop step and status code (1 converged, 2 diverged, 3 max_steps)
    per run, and the error at the stop step (R, n) in layout order.

    Raises
    ------
    ValueError
        Where cupy or a CUDA device is missing.
    """
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # ImportError, or cupy's CUDARuntimeError without a driver or device
        raise ValueError(f"gpu_scan: the kernel needs cupy and a CUDA GPU ({type(exc).__name__}: {exc}); "
                         "gpu_scan.emulate runs its arithmetic on the host") from None
    dt = p.dtype
    tpb = threads or max(32, -(-p.n // 32) * 32)
    dev = {name: cupy.asarray(getattr(p, name)) for name in
           ("H", "hoff", "bstart", "bsize", "seg_end", "seg_new_group", "hp", "sched", "which", "thr", "div",
            "rec_slot")}
    X, M, V = (cupy.asarray(a) for a in (p.X, p.M, p.V))
    T_rec = p.rec.size
    gap = cupy.full((p.R, T_rec), cupy.nan)
    gnorm = cupy.full((p.R, T_rec), cupy.nan)
    stop = cupy.zeros(p.R, dtype=cupy.int64)
    status = cupy.zeros(p.R, dtype=cupy.int32)
    args = (dev["H"], dev["hoff"], dev["bstart"], dev["bsize"], dev["seg_end"], dev["seg_new_group"],
            np.int32(p.seg_end.size), np.int32(p.n), np.int64(p.steps), X, M, V, dev["hp"], dev["sched"],
            dev["which"], np.int32(p.sched.shape[1]), dev["thr"], dev["div"], np.int32(p.tol_on), dev["rec_slot"],
            np.int32(T_rec), gap, gnorm, stop, status)
    _kernel(p.kind, dt.name)((p.R,), (tpb,), args, shared_mem=2 * p.n * dt.itemsize)
    return gap.get(), gnorm.get(), stop.get(), status.get(), X.get()


def run(problem, optimizer, w0=None, seeds=None, steps: int = 1000, tol: float | None = None, record="log",
        device: str = "auto"):
    """:func:`quadlab.run` for small problems with the whole iteration in one kernel launch.

    Parameters
    ----------
    problem, optimizer, w0, seeds, steps, tol, record : as :func:`quadlab.run` (iterate path).
    device : "gpu" (the CUDA kernel, needs cupy), "emulate" (its arithmetic on the host, numpy) or "auto"
        ("gpu" for a problem on the cupy backend, else "emulate").

    Returns
    -------
    quadlab.runner.Result with ``method="gpu_scan"``: the iterate path's result, bit for bit (see the module
    docstring for the summation order of the norms).

    Raises
    ------
    ValueError
        As :func:`prepare`; "gpu" without cupy or a CUDA device; an unknown ``device``.

    Examples
    --------
    >>> import numpy as np, quadlab
    >>> from quadlab import optim, spectra
    >>> from quadlab._engine import gpu_scan
    >>> prob = quadlab.BlockQuadratic(spectra.simple_heterogeneous(5000.0), seed=0)
    >>> res = gpu_scan.run(prob, optim.adam(lr=np.geomspace(1e-3, 1e-1, 4)), steps=200, device="emulate")
    >>> res.status.shape
    (4,)
    """
    from ..runner import Result

    if device not in ("auto", "gpu", "emulate"):
        raise ValueError(f"gpu_scan: device must be 'auto', 'gpu' or 'emulate', got {device!r}")
    p = prepare(problem, optimizer, w0, seeds, steps, tol, record)
    if device == "auto":
        device = "gpu" if problem.backend.is_gpu else "emulate"
    gap, gnorm, stop, status, _ = launch(p) if device == "gpu" else emulate(p)
    names = np.array(["", "converged", "diverged", "max_steps"], dtype=object)
    st = names[status].astype(str)
    to_tol = np.where(status == 1, stop, -1).astype(np.int64)
    after = p.rec[None, :] > stop[:, None]
    gap[after] = np.nan
    gnorm[after] = np.nan
    return Result(steps=p.rec, gap=gap, grad_norm=gnorm, steps_to_tol=to_tol, stop_step=stop.astype(np.int64),
                  status=st, config=p.config, w0=p.E0 + problem.optimum_host, optimizer=optimizer.name,
                  options=dict(optimizer.options), method="gpu_scan", backend=problem.backend.name,
                  dtype=problem.backend.dtype_name, tol=tol, n_steps=p.steps)
