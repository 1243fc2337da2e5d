#!/usr/bin/env python3
"""What a Python stage costs per record, beside a C++ stage doing the same nothing.

    PYTHONPATH=build/python /usr/bin/python3 bench/compare/python_stage_cost.py [--records N]

range(N) >> X >> discard, with X the C++ `passthrough`, then a Python stage returning its input
(bytes in, bytes out: the text wire of a C++ neighbour), then a Python stage returning int(x) + 1
(a decode, a call and an encode of a number). One worker each; the run's own elapsed time (report
elapsed_s, start-up included), best of 3. Prints ns per record for each and the difference to
passthrough: the price of calling Python for a record.
"""
import argparse

import rivus


def identity(b):
    return b


def plus_one(b):
    return int(b) + 1


def best(steps, n, repeat=3):
    times = []
    for _ in range(repeat):
        report = (rivus.range(n) >> steps >> rivus.discard()).run(name="pycost")
        assert report["status"] == "finished", report.get("failure")
        assert report["stages"][-1]["records_in"] == n
        times.append(report["elapsed_s"])
    return min(times) / n * 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2_000_000)
    a = ap.parse_args()
    base = best(rivus.use("passthrough"), a.records)
    print(f"stage=passthrough(C++) records={a.records} ns_per_record={base:.1f}")
    for name, fn in (("identity", identity), ("int_plus_one", plus_one)):
        ns = best(rivus.stage(fn, name=name), a.records)
        print(f"stage={name}(Python) records={a.records} ns_per_record={ns:.1f} "
              f"python_cost_ns={ns - base:.1f}")


if __name__ == "__main__":
    main()
