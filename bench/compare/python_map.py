#!/usr/bin/env python3
"""rivus.map beside the Python process pools, on two workloads (docs/benchmarks.md).

    PYTHONPATH=build/python /usr/bin/python3 bench/compare/python_map.py [--workers W]
        [--fnv-records N] [--small-records M] [--repeat K]

(a) fnv: the FNV workload of ../shared/BENCHMARKS.md in pure Python (python_pool.py's work(),
    rounds 1000), N = 20,000 records; the ideal is W x the rate of one process calling it in a
    loop (measured before and after the contenders; the better reading is kept).
(b) small: x + 1 over M = 2,000,000 ints: what each pool costs per item.
Each contender runs K times (default 3) and the best time is kept; every run's results are checked
against the builtin map. Contenders: rivus.map; multiprocessing.Pool.map with chunksize tuned
(the best of 100, 1000, 10000 is printed); concurrent.futures.ProcessPoolExecutor.map (same
chunksizes); joblib.Parallel (python3-joblib; batch_size='auto'), when installed. Timed from
creating the pool (its forks included) to the last result in the parent's hands.
Prints one line per contender: workload, name, seconds, items/s, ratio to the ideal or to Pool.
"""
import argparse
import concurrent.futures
import multiprocessing
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import python_pool  # noqa: E402  (the FNV workload in Python)

import rivus  # noqa: E402


def fnv(i):
    return "%016x" % python_pool.work_value(i, 1000)


def inc(x):
    return x + 1


def best_of(k, fn):
    best = None
    for _ in range(k):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None or dt < best else best
    return best, out


def contenders(func, items, workers):
    yield "rivus.map", None, lambda: rivus.map(func, items, workers=workers, chunk_size=1000)
    for cs in (100, 1000, 10000):
        def pool(cs=cs):
            with multiprocessing.get_context("fork").Pool(workers) as p:
                return p.map(func, items, chunksize=cs)
        yield "Pool.map", cs, pool
    for cs in (100, 1000, 10000):
        def executor(cs=cs):
            with concurrent.futures.ProcessPoolExecutor(
                    workers, mp_context=multiprocessing.get_context("fork")) as ex:
                return list(ex.map(func, items, chunksize=cs))
        yield "ProcessPoolExecutor", cs, executor
    try:
        import joblib
    except ImportError:
        return
    yield "joblib", "auto", lambda: joblib.Parallel(n_jobs=workers, batch_size="auto")(
        joblib.delayed(func)(x) for x in items)


def run(workload, func, items, workers, repeat, ideal=None):
    expected = list(map(func, items))
    results = {}
    for name, cs, fn in contenders(func, items, workers):
        seconds, out = best_of(repeat, fn)
        assert list(out) == expected, f"{name} gave wrong results"
        if name not in results or seconds < results[name][0]:
            results[name] = (seconds, cs)
    pool_rate = len(items) / results["Pool.map"][0]
    ideal_rate = ideal() * workers if ideal else None  # measured after the contenders too
    for name, (seconds, cs) in results.items():
        rate = len(items) / seconds
        ratio = (f"ideal_ratio={rate / ideal_rate:.3f}" if ideal_rate
                 else f"pool_ratio={rate / pool_rate:.2f}")
        print(f"workload={workload} contender={name} chunksize={cs} workers={workers} "
              f"items={len(items)} seconds={seconds:.3f} items_per_s={rate:.0f} {ratio}",
              flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--fnv-records", type=int, default=20000)
    ap.add_argument("--small-records", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    assert python_pool.work_value(0, 1000) == 0xDE5C0017EC3C6C1B

    # One process's rate, before and after the contenders (the better one is kept): on a shared
    # VM a single reading taken while the host is busy makes every ratio look too good.
    def one_process():
        n = a.fnv_records // 4
        seconds, _ = best_of(a.repeat, lambda: [fnv(i) for i in range(n)])
        return n / seconds

    before = one_process()
    rates = []

    def ideal():
        rates.append(max(before, one_process()))
        return rates[-1]

    run("fnv", fnv, list(range(a.fnv_records)), a.workers, a.repeat, ideal)
    print(f"workload=fnv contender=one-process items_per_s={rates[-1]:.0f}", flush=True)
    run("small", inc, list(range(a.small_records)), a.workers, a.repeat)


if __name__ == "__main__":
    main()
