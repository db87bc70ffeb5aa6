"""Run gpu_scan's CUDA source on the host: one std::thread per CUDA thread, std::barrier for __syncthreads.

A check of the kernel's own source (indices, shared memory, synchronisation, the stop and record logic)
without a GPU: g++ compiles the generated CUDA text behind a small shim (``__global__``, ``threadIdx``,
``__syncthreads``, ``__shared__`` state as function statics shared by the block's threads), with
``-ffp-contract=off`` as the kernel is built with ``--fmad=false``.  Blocks run one after the other.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess

import numpy as np

from quadlab._engine import gpu_scan

SHIM = r"""
#include <barrier>
#include <cmath>
#include <thread>
#include <vector>
#define __global__
#define __restrict__
struct Dim3 { int x = 0; };
thread_local Dim3 threadIdx, blockIdx;
static std::barrier<>* g_bar = nullptr;
static unsigned char* g_smem = nullptr;
static inline void __syncthreads() { g_bar->arrive_and_wait(); }
using std::sqrt;
using std::isfinite;
"""


def available() -> bool:
    return shutil.which("g++") is not None


def build(kind: str, dtype: str, folder) -> ctypes.CDLL:
    src = gpu_scan.cuda_source(kind, dtype)
    src = src.replace('extern "C" __global__ void quadlab_scan(', "static void quadlab_scan(")
    src = src.replace("extern __shared__ unsigned char smem_[];", "unsigned char* smem_ = g_smem;")
    src = src.replace("__shared__ int flag;", "static int flag;")
    params = re.search(r"static void quadlab_scan\((.*?)\)\s*\{", src, re.S).group(1)
    names = [re.findall(r"\w+", p)[-1] for p in params.split(",")]
    driver = f"""
extern "C" void host_launch(int nblocks, int tpb, long long smem_bytes, {params}) {{
    std::vector<unsigned char> smem(smem_bytes);
    g_smem = smem.data();
    for (int b = 0; b < nblocks; ++b) {{
        std::barrier<> bar(tpb);
        g_bar = &bar;
        std::vector<std::thread> ts;
        for (int t = 0; t < tpb; ++t)
            ts.emplace_back([&, t, b] {{ threadIdx.x = t; blockIdx.x = b; quadlab_scan({", ".join(names)}); }});
        for (auto& th : ts) th.join();
    }}
}}
"""
    cpp = folder / f"scan_{kind}_{dtype}.cpp"
    lib = folder / f"scan_{kind}_{dtype}.so"
    cpp.write_text(SHIM + src + driver)
    subprocess.run(["g++", "-std=c++20", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-pthread",
                    "-o", str(lib), str(cpp)], check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(lib))


def launch(lib: ctypes.CDLL, p: gpu_scan.Prepared):
    """gpu_scan.launch's arguments, on host arrays; returns (gap, gnorm, stop, status, x)."""
    X, M, V = p.X.copy(), p.M.copy(), p.V.copy()
    T_rec = p.rec.size
    gap = np.full((p.R, T_rec), np.nan)
    gnorm = np.full((p.R, T_rec), np.nan)
    stop = np.zeros(p.R, dtype=np.int64)
    status = np.zeros(p.R, dtype=np.int32)
    arrays = {"H": p.H, "hoff": p.hoff, "bstart": p.bstart, "bsize": p.bsize, "seg_end": p.seg_end,
              "seg_new_group": p.seg_new_group, "hp": p.hp, "sched": p.sched, "which": p.which, "thr": p.thr,
              "div": p.div, "rec_slot": p.rec_slot}
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}

    def ptr(a):
        return a.ctypes.data_as(ctypes.c_void_p)

    tpb = max(32, -(-p.n // 32) * 32)
    lib.host_launch(
        ctypes.c_int(p.R), ctypes.c_int(tpb), ctypes.c_longlong(2 * p.n * p.dtype.itemsize),
        ptr(arrays["H"]), ptr(arrays["hoff"]), ptr(arrays["bstart"]), ptr(arrays["bsize"]), ptr(arrays["seg_end"]),
        ptr(arrays["seg_new_group"]), ctypes.c_int(p.seg_end.size), ctypes.c_int(p.n), ctypes.c_longlong(p.steps),
        ptr(X), ptr(M), ptr(V), ptr(arrays["hp"]), ptr(arrays["sched"]), ptr(arrays["which"]),
        ctypes.c_int(p.sched.shape[1]), ptr(arrays["thr"]), ptr(arrays["div"]), ctypes.c_int(int(p.tol_on)),
        ptr(arrays["rec_slot"]), ctypes.c_int(T_rec), ptr(gap), ptr(gnorm), ptr(stop), ptr(status))
    return gap, gnorm, stop, status, X
