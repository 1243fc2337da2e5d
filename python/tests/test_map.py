"""rivus.map against the builtin map, and items that fail in every way a worker can."""

import collections
import ctypes
import os
import threading
import time

import pytest

import rivus


def mixed_items(n):
    kinds = [lambda i: i, lambda i: f"s{i}", lambda i: b"b%d" % i, lambda i: (i, f"t{i}"),
             lambda i: None, lambda i: i / 4]
    return [kinds[i % len(kinds)](i) for i in range(n)]


def transform(x):
    if x is None:
        return None
    if isinstance(x, tuple):
        return (x[1], x[0] * 2)
    return x * 2


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_map_equals_builtin_map(workers):
    items = mixed_items(100_000)
    expected = list(map(transform, items))
    got = rivus.map(transform, items, workers=workers)
    assert got == expected
    assert got.dead_letters == []
    assert got.report["status"] == "finished"


def test_unordered_map_is_the_same_multiset():
    items = mixed_items(100_000)
    got = rivus.map(transform, items, workers=2, ordered=False, chunk_size=97)
    assert collections.Counter(map(repr, got)) == collections.Counter(
        map(repr, map(transform, items)))


def test_map_takes_any_iterable_and_keeps_types():
    assert rivus.map(str.upper, iter(["a", "b", "c"]), workers=2) == ["A", "B", "C"]
    assert rivus.map(lambda b: b + b"!", (b"x", b"\xff")) == [b"x!", b"\xff!"]
    assert rivus.map(lambda s: s, ["caf\u00e9", "\udcff"]) == ["caf\u00e9", "\udcff"]
    assert rivus.map(lambda x: x, []) == []


def test_functions_are_not_pickled():
    lock = threading.Lock()  # unpicklable: a closure over it could not cross a pickling pool
    offset = 7

    def add(x):
        with lock:
            return x + offset

    assert rivus.map(add, range(1000), workers=2) == [x + 7 for x in range(1000)]


def fragile(x):
    if x == 11:
        ctypes.string_at(0)  # segfault in C code
    if x == 23:
        raise ValueError(f"bad item {x}")
    if x == 37:
        os._exit(3)
    if x == 41:
        time.sleep(60)  # past the timeout
    return x * 10


def test_each_kind_of_failure_is_dead_lettered_and_the_rest_is_exact():
    got = rivus.map(fragile, range(60), workers=2, chunk_size=8, on_error="skip",
                    max_retries=1, timeout=1.0)
    by_index = {d["index"]: d for d in got.dead_letters}
    assert sorted(by_index) == [11, 23, 37, 41]
    assert by_index[11]["reason"] == "crash" and by_index[11]["signal_name"] == "SIGSEGV"
    assert by_index[23]["reason"] == "error"
    assert by_index[23]["error"].startswith("ValueError: bad item 23 (line ")
    assert "in fragile" in by_index[23]["error"]
    assert by_index[23]["attempts"] == 2
    assert by_index[37]["reason"] == "crash" and by_index[37]["exit_code"] == 3
    assert by_index[41]["reason"] == "timeout"
    assert got == [x * 10 for x in range(60) if x not in (11, 23, 37, 41)]


def test_on_error_raise_names_the_items():
    with pytest.raises(rivus.PipelineError) as info:
        rivus.map(fragile, range(30), workers=2, chunk_size=8, max_retries=0)
    e = info.value
    assert [d["index"] for d in e.dead_letters] == [11, 23]
    assert "2 of 30 items failed" in str(e)
    assert "item 23: ValueError: bad item 23" in str(e)
    assert e.report["status"] == "finished"


def test_bad_arguments_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="on_error"):
        rivus.map(str, [1], on_error="ignore")
    with pytest.raises(ValueError, match="chunk_size"):
        rivus.map(str, [1], chunk_size=0)


def test_a_thread_started_before_the_run_is_warned_about():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, name="bystander")
    t.start()
    try:
        with pytest.warns(RuntimeWarning, match="other thread"):
            assert rivus.map(abs, [-1, -2], workers=1) == [1, 2]
        with pytest.raises(RuntimeError, match="other thread"):
            rivus.stage(abs)  # building is fine; only running checks
            (rivus.from_iterable([1]) >> rivus.stage(abs) >> rivus.discard()).run(strict=True)
    finally:
        stop.set()
        t.join(10)


def test_chunks_too_large_for_a_ring_are_cut_smaller():
    items = [("x" * 100_000) + str(i) for i in range(300)]  # 30 MB a chunk at chunk_size 1000
    assert rivus.map(len, items, workers=2) == [len(s) for s in items]


class Doubler:
    def __init__(self, x):
        self.x = x

    def process(self):
        return self.x * 2


def test_a_class_with_process_is_still_called_as_a_function_by_map():
    got = rivus.map(Doubler, [1, 2, 3], workers=1)
    assert [d.process() for d in got] == [2, 4, 6]


def test_an_unpicklable_result_is_an_error_naming_it():
    got = rivus.map(lambda x: (lambda: x) if x == 2 else x, [1, 2, 3], workers=1, max_retries=0,
                    on_error="skip")
    assert got == [1, 3]
    assert [d["index"] for d in got.dead_letters] == [2 - 1]
    assert "pickle" in got.dead_letters[0]["error"]
