#!/usr/bin/env python3
"""The Python peer for the FNV workload of ../shared/BENCHMARKS.md (bench/compare/run.sh).

    python_pool.py [--records N] [--rounds R] [--processes P] [--chunksize C]

multiprocessing.Pool(P).imap(work, range(N), chunksize=C), with work() the FNV workload in pure
Python (standard library only) returning the `fnv` stage's output record (16 lowercase hex
digits); the parent consumes the results in order and discards them. Timed from creating the pool
(the workers' fork included, as `rivus run`'s elapsed time includes its forks) to the last
result. Defaults: N = 20,000 (pure Python does about 1 k records/s per core, so the standard
10^6 records would take minutes; the rate is records per second and does not depend on N once N
is many chunks per process), rounds = 1000, P = the number of CPUs, chunksize = 1000.

Prints one line of key=value pairs, like fnv_peers.
"""
import argparse
import multiprocessing
import os
import time

MASK = (1 << 64) - 1
OFFSET = 0xCBF29CE484222325
PRIME = 0x100000001B3
ROUNDS = 1000


def fnv1a64_u64(x):
    """The definition, byte by byte (used to check work_value)."""
    h = OFFSET
    for _ in range(8):
        h = ((h ^ (x & 0xFF)) * PRIME) & MASK
        x >>= 8
    return h


def work_value(i, rounds):
    """x = i; repeat rounds times: x = fnv1a64_u64(x) -- the 8 byte steps unrolled, constants in
    locals: the fastest plain-Python form we found (about 1.5x the looped definition)."""
    x = i & MASK
    m, p, o = MASK, PRIME, OFFSET
    for _ in range(rounds):
        h = ((o ^ (x & 0xFF)) * p) & m
        h = ((h ^ ((x >> 8) & 0xFF)) * p) & m
        h = ((h ^ ((x >> 16) & 0xFF)) * p) & m
        h = ((h ^ ((x >> 24) & 0xFF)) * p) & m
        h = ((h ^ ((x >> 32) & 0xFF)) * p) & m
        h = ((h ^ ((x >> 40) & 0xFF)) * p) & m
        h = ((h ^ ((x >> 48) & 0xFF)) * p) & m
        x = ((h ^ (x >> 56)) * p) & m
    return x


def work(i):
    return "%016x" % work_value(i, ROUNDS)


def init(rounds):
    global ROUNDS
    ROUNDS = rounds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--processes", type=int, default=os.cpu_count())
    ap.add_argument("--chunksize", type=int, default=1000)
    a = ap.parse_args()
    assert work_value(0, 1000) == 0xDE5C0017EC3C6C1B, "FNV test vector failed"
    assert all(work_value(i, 3) == fnv1a64_u64(fnv1a64_u64(fnv1a64_u64(i)))
               for i in (1, 255, 1 << 40, MASK)), "unrolled form differs from the definition"

    t0 = time.perf_counter()
    checksum = 0
    with multiprocessing.Pool(a.processes, initializer=init, initargs=(a.rounds,)) as pool:
        for out in pool.imap(work, range(a.records), chunksize=a.chunksize):
            checksum = (checksum + int(out, 16)) & MASK
    seconds = time.perf_counter() - t0
    print("mode=python records=%d rounds=%d processes=%d chunksize=%d seconds=%.4f "
          "records_per_s=%.0f checksum=0x%016x"
          % (a.records, a.rounds, a.processes, a.chunksize, seconds, a.records / seconds, checksum))


if __name__ == "__main__":
    main()
