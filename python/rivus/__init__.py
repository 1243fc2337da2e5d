"""Rivus from Python: plain Python functions on Rivus worker processes.

    import rivus
    squares = rivus.map(lambda x: x * x, range(1_000_000))          # like Pool.map

    sink = rivus.collect()
    report = (rivus.lines("access.log")
              >> rivus.stage(parse, workers=4, batch=1000)
              >> rivus.window(size=1000, aggregate="count")
              >> sink).run(name="logs")

Workers are forked from this process, so functions, classes and the data they use are never
pickled; each worker is its own process with its own GIL. A Python exception is a record error
(retried, then dead-lettered); a crash (segfault, os._exit, SIGKILL, out of memory) costs a
replacement worker and the batch is redone, the item that keeps killing workers dead-lettered.
docs/python.md is the guide.
"""

from __future__ import annotations

import builtins
import gc
import json
import os
import re
import shutil
import struct
import tempfile
import warnings
from typing import Any, Callable, Iterable

from . import _rivus

__all__ = [
    "PipelineError", "Stage", "Step", "Pipeline", "MapResult", "map", "stage", "source",
    "from_iterable", "lines", "range", "use", "window", "batch", "to_file", "to_stdout",
    "discard", "collect", "last_report",
]

_last_report: dict | None = None


class PipelineError(Exception):
    """A run that did not finish cleanly, or items that failed (rivus.map, on_error="raise").

    .dead_letters: one dict per failed item: index (its position in the input), reason
    ("error", "crash", "timeout", "too-large"), error (the exception and where it was raised, or
    what killed the worker), attempts, and signal_name / exit_code for crashes.
    .report: the run's report (a dict, docs/cli.md).
    """

    def __init__(self, message: str, dead_letters: list | None = None, report: dict | None = None):
        super().__init__(message)
        self.dead_letters = dead_letters or []
        self.report = report or {}


class MapResult(list):
    """rivus.map's result: the list of results, plus .dead_letters and .report."""

    dead_letters: list
    report: dict


def last_report() -> dict | None:
    """The report of the last run in this process (a dict), or None."""
    return _last_report


class Stage:
    """Base of class stages: one instance per worker process.

    setup() runs once in each worker before its first record; process(item) returns the output
    (None drops the item, a list emits each element); teardown() runs when the worker ends
    normally. worker_index, workers, generation and stage_name are set before setup().
    """

    worker_index = 0
    workers = 1
    generation = 0
    stage_name = ""

    def setup(self) -> None:
        pass

    def process(self, item):
        return item

    def teardown(self) -> None:
        pass


def _duration(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{int(round(v * 1e6))}us"
    raise TypeError(f"a duration is seconds (a number) or text like '250ms', not {v!r}")


class Step:
    """One stage with its settings; join steps with >> into a Pipeline."""

    def __init__(self, kind: str, *, use: str | None = None, params: dict | None = None,
                 target=None, name: str | None = None, workers: int | None = None,
                 batch: int | dict | None = None, key_by=None, ordered: bool | None = None,
                 timeout=None, retry: dict | None = None, map_mode: bool = False):
        self.kind = kind  # "builtin", "py-stage", "py-source", "collect"
        self.use = use
        self.params = dict(params or {})
        self.target = target
        self.name = name
        self.workers = workers
        self.batch = batch
        self.key_by = key_by
        self.ordered = ordered
        self.timeout = timeout
        self.retry = retry
        self.map_mode = map_mode

    @property
    def is_python(self) -> bool:
        return self.kind in ("py-stage", "py-source")

    def __rshift__(self, other) -> "Pipeline":
        return Pipeline([self]) >> other

    def __rrshift__(self, other) -> "Pipeline":
        return Pipeline.of(other) >> self


class Pipeline:
    """Steps from a source to a sink. run() blocks and returns the report as a dict."""

    def __init__(self, steps: list[Step]):
        self.steps = list(steps)

    @staticmethod
    def of(x) -> "Pipeline":
        if isinstance(x, Pipeline):
            return x
        if isinstance(x, Step):
            return Pipeline([x])
        raise TypeError(f"only rivus steps and pipelines compose with >>, not {type(x).__name__}")

    def __rshift__(self, other) -> "Pipeline":
        return Pipeline(self.steps + Pipeline.of(other).steps)

    def document(self, name: str = "python", settings: dict | None = None) -> dict:
        """The spec document (what a YAML file would hold) with Python code registered."""
        if len(self.steps) < 2:
            raise ValueError("a pipeline needs a source and a sink")
        _rivus.register_collect_sink()
        stages = []
        used = set()
        for i, st in enumerate(self.steps):
            prev = self.steps[i - 1] if i > 0 else None
            nxt = self.steps[i + 1] if i + 1 < len(self.steps) else None
            entry: dict[str, Any] = {}
            base = st.name or (st.use if st.kind == "builtin" else
                               getattr(st.target, "__name__", "python").strip("<>") or "python")
            stage_name, n = base, 1
            while stage_name in used:
                n += 1
                stage_name = f"{base}{n}"
            used.add(stage_name)
            entry["name"] = stage_name
            out_key = None
            if nxt is not None and callable(nxt.key_by):
                if not st.is_python:
                    raise ValueError(
                        f"stage '{nxt.name or nxt.use or 'python'}': key_by with a function needs"
                        " a Python stage or source right before it; for a built-in stage before it"
                        " use key_by=<field index> or key_by='record'")
                out_key = nxt.key_by
            wire_in = "tagged" if prev is not None and prev.is_python else "text"
            wire_out = "tagged" if nxt is not None and (nxt.is_python or nxt.kind == "collect") \
                else "text"
            if st.kind == "builtin":
                entry["use"] = st.use
            elif st.kind == "py-stage":
                entry["use"] = _rivus.register_stage(
                    st.target, _is_stage_class(st.target), st.map_mode, wire_in, wire_out,
                    out_key)
            elif st.kind == "py-source":
                entry["use"] = _rivus.register_source(st.target, wire_out, out_key)
            elif st.kind == "collect":
                entry["use"] = "py.collect"
                st.target._wire = wire_in
            if st.kind == "collect":
                st.target._path = st.target._new_path()
                entry["with"] = {"path": st.target._path}
            elif st.params:
                entry["with"] = st.params
            if st.workers is not None:
                entry["workers"] = st.workers
            if st.batch is not None:
                entry["batch"] = {"records": st.batch} if isinstance(st.batch, int) else st.batch
            if st.key_by is not None:
                entry["key_by"] = ("key" if callable(st.key_by) else
                                   {"field": st.key_by} if isinstance(st.key_by, int) else
                                   st.key_by)
            if st.ordered is not None:
                entry["ordered"] = st.ordered
            if st.timeout is not None:
                entry["timeout"] = _duration(st.timeout)
            if st.retry is not None:
                entry["retry"] = st.retry
            stages.append(entry)
        doc = {"name": name}
        doc.update(settings or {})
        doc["stages"] = stages
        return doc

    def run(self, name: str = "python", *, report: str | None = None, quiet: bool = True,
            strict: bool = False, **settings) -> dict:
        """Runs the pipeline in worker processes forked from this one; returns the report.

        settings are the pipeline keys of a YAML spec (docs/spec.md): ring, batch, retry,
        restart, spares, dead_letter, stall, drain_timeout, metrics, timeout. A failed run still
        returns its report (status "failed", exit_code); only a spec error raises (ValueError).
        A program with other threads gets a warning (fork copies only this one), an error with
        strict=True.
        """
        global _last_report
        for key in ("timeout", "drain_timeout"):
            if key in settings:
                settings[key] = _duration(settings[key])
        doc = self.document(name, settings)
        _check_threads(strict)
        collects = [st.target for st in self.steps if st.kind == "collect"]
        gc.collect()
        gc.freeze()  # objects made so far stay shared copy-on-write with the workers
        try:
            code, text = _rivus.run(json.dumps(doc), report or "", quiet)
        finally:
            gc.unfreeze()
        result = json.loads(text)
        _last_report = result
        for c in collects:
            c._load()
        if result.get("status") in ("interrupted", "aborted"):
            raise KeyboardInterrupt(f"pipeline '{name}' was {result['status']}")
        return result


def _is_stage_class(t) -> bool:
    """A class whose instances are stages (one per worker), not a callable such as int or str."""
    return isinstance(t, type) and (issubclass(t, Stage) or "process" in dir(t))


def _check_threads(strict: bool) -> None:
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return
    if len(tasks) <= 1:
        return
    names = []
    for t in tasks:
        if int(t) == os.getpid():
            continue
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    message = (f"this process has {len(tasks) - 1} other thread(s) ({', '.join(names)}); Rivus "
               "forks workers, which copies only the calling thread, so a lock another thread "
               "holds stays held in every worker. Start no threads before run(), e.g. set "
               "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 before importing numpy")
    if strict:
        raise RuntimeError(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


# ---- steps -----------------------------------------------------------------------------------

def stage(fn_or_class, *, name: str | None = None, workers: int | None = None,
          batch: int | dict | None = None, key_by=None, ordered: bool | None = None,
          timeout=None, retry: dict | None = None) -> Step:
    """A Python transform: a function item -> output, or a class with process(item) (a
    rivus.Stage subclass, say), instantiated once in each worker.

    The output None drops the item; a list emits each element; anything else is one output.
    key_by: a field index or 'record' (hashing the record's bytes, as in YAML), or a function of
    the item (computed in the stage before, which must then be a Python stage or source).
    """
    if not callable(fn_or_class):
        raise TypeError(f"stage() takes a function or a class, not {type(fn_or_class).__name__}")
    return Step("py-stage", target=fn_or_class, name=name, workers=workers, batch=batch,
                key_by=key_by, ordered=ordered, timeout=timeout, retry=retry)


def source(factory: Callable[[], Iterable], *, name: str | None = None,
           batch: int | None = None) -> Step:
    """A Python source: factory() returns a fresh iterable of the items.

    After the source's worker crashes, its replacement calls factory() again and skips the items
    already committed, so factory() must give the same items in the same order every time.
    """
    import itertools

    def from_position(start: int):
        return itertools.islice(iter(factory()), start, None)

    from_position.__name__ = getattr(factory, "__name__", "source")
    return Step("py-source", target=from_position, name=name, batch=batch)


def from_iterable(items, *, name: str | None = None, batch: int | None = None) -> Step:
    """A source over a list or tuple (other iterables are read into a list first)."""
    seq = items if isinstance(items, (list, tuple)) else list(items)

    def from_position(start: int):
        return builtins.map(seq.__getitem__, builtins.range(start, len(seq)))

    from_position.__name__ = name or "items"
    return Step("py-source", target=from_position, name=name, batch=batch)


def use(name: str, *, stage_name: str | None = None, workers: int | None = None,
        batch=None, key_by=None, ordered: bool | None = None, timeout=None,
        retry: dict | None = None, **params) -> Step:
    """Any registered stage by name, as `use:` in YAML; params are its `with:` parameters."""
    return Step("builtin", use=name, params=params, name=stage_name, workers=workers,
                batch=batch, key_by=key_by, ordered=ordered, timeout=timeout, retry=retry)


def lines(path: str, **kw) -> Step:
    """One record (bytes, without the newline) per line of a file; '-' reads standard input."""
    return use("lines", path=path, **kw)


def range(start: int, stop: int | None = None, **kw) -> Step:  # noqa: A001 (rivus.range)
    """The integers start..stop-1 as decimal text (the built-in `range`)."""
    if stop is None:
        start, stop = 0, start
    return use("range", start=start, count=max(0, stop - start), **kw)


def window(*, key_by=None, workers: int | None = None, ordered: bool | None = None,
           **params) -> Step:
    """The built-in `window` stage (docs/streams.md); agg= is accepted for aggregate=."""
    if "agg" in params:
        params["aggregate"] = params.pop("agg")
    return use("window", key_by=key_by, workers=workers, ordered=ordered, **params)


def batch(**params) -> Step:
    """The built-in `batch` stage: records joined per `records` or per `linger`."""
    return use("batch", **params)


def to_file(path: str, *, ordered: bool | None = None, **kw) -> Step:
    """One record per line into a file (truncated at the start), exactly once."""
    return use("file", path=path, ordered=ordered, **kw)


def to_stdout(**kw) -> Step:
    return use("stdout", **kw)


def discard(**kw) -> Step:
    return use("discard", **kw)


class collect(Step):
    """A sink whose records come back to this process: .items after run(), in the order the
    sink received them (with ordered=True, source order); .seqs their source sequence numbers."""

    def __init__(self, *, ordered: bool | None = None, name: str | None = None):
        super().__init__("collect", target=self, name=name or "collect", ordered=ordered)
        self.items: list = []
        self.seqs: list[int] = []
        self._wire = "text"
        self._path = ""
        self._dir = ""

    def _new_path(self) -> str:
        self._dir = tempfile.mkdtemp(prefix="rivus-collect-")
        return os.path.join(self._dir, "records")

    def _load(self) -> None:
        self.items, self.seqs = [], []
        try:
            with open(self._path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
        at, frame = 0, struct.Struct("=QI")
        while at + frame.size <= len(data):
            seq, n = frame.unpack_from(data, at)
            at += frame.size
            self.seqs.append(seq)
            self.items.append(_rivus.decode(data[at:at + n], self._wire))
            at += n


# ---- rivus.map --------------------------------------------------------------------------------

def _read_dead_letters(path: str, stage_name: str) -> list[dict]:
    found: dict[int, dict] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    d = json.loads(line)
                except ValueError:
                    continue
                if d.get("stage") != stage_name:
                    continue
                entry = {"index": d.get("seq"), "reason": d.get("reason"),
                         "error": d.get("error", ""), "attempts": d.get("attempts")}
                for k in ("signal", "signal_name", "exit_code"):
                    if d.get(k) is not None:
                        entry[k] = d[k]
                found.setdefault(entry["index"], entry)  # a worker may write one twice
    except FileNotFoundError:
        pass
    return [found[k] for k in sorted(found)]


def _describe(e: BaseException) -> str:
    """"ValueError: bad input (line 3 in parse, job.py)", as the C++ side describes exceptions."""
    import traceback

    text = type(e).__name__
    if str(e):
        text += f": {e}"
    frames = traceback.extract_tb(e.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (line {last.lineno} in {last.name}, {last.filename})"
    return text


def _chunk_runner(fn: Callable, max_retries: int) -> Callable:
    """fn over a chunk of items: (results, failures), failures = [(offset, error, attempts)].

    An item that raises is retried in place up to max_retries times; its result is then None and
    it is listed in failures. The worker stays up, and the other items keep their results.
    """

    def run_chunk(chunk):
        out, failures = [], []
        append = out.append
        i, n = 0, len(chunk)
        while i < n:
            try:
                for k in builtins.range(i, n):
                    append(fn(chunk[k]))
                break
            except Exception as first:  # noqa: BLE001 (any exception fails the item, not the run)
                k = len(out)
                error, attempts, value, ok = first, 1, None, False
                while not ok and attempts <= max_retries:
                    try:
                        value, ok = fn(chunk[k]), True
                    except Exception as again:  # noqa: BLE001
                        error, attempts = again, attempts + 1
                append(value)
                if not ok:
                    failures.append((k, _describe(error), attempts))
                i = k + 1
        return out, failures

    run_chunk.__name__ = "map"
    return run_chunk


def _run_map(target: Callable, records: list, workers: int, max_retries: int, timeout,
             name: str):
    """One run: records from a list through `target` (one output per record) into a collect
    sink. Returns (sink, dead letters, report)."""
    work_dir = tempfile.mkdtemp(prefix="rivus-map-")
    try:
        sink = collect()
        steps = (from_iterable(records, name="items", batch=1)
                 >> Step("py-stage", target=target, name="map", workers=workers, batch=1,
                         timeout=timeout, map_mode=True)
                 >> sink)
        dead_path = os.path.join(work_dir, "dead-letters.jsonl")
        report = steps.run(
            name=name,
            ring={"capacity": "16MiB"},  # a chunk's pickle is one record
            retry={"max_retries": max_retries, "delay": "0ms"},
            dead_letter={"path": dead_path, "max_ratio": 1},
            restart={"max_restarts": 1000, "window": "10s"},
        )
        dead = _read_dead_letters(dead_path, "map")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    if report.get("status") != "finished":
        failure = report.get("failure") or {}
        raise PipelineError(f"rivus.map failed: {failure.get('reason', report.get('status'))}",
                            dead, report)
    return sink, dead, report


def map(fn: Callable, iterable: Iterable, *, workers: int | None = None, chunk_size: int = 1000,
        ordered: bool = True, on_error: str = "raise", max_retries: int = 3,
        timeout=None) -> MapResult:
    """fn(item) for every item, on `workers` processes (default: the CPUs this process may use).

    Returns the results in input order (ordered=False: in the order they completed) as a
    MapResult (a list, with .dead_letters and .report). An item whose call raises is retried up
    to max_retries times, then dead-lettered; one that crashes its worker (segfault, os._exit,
    a signal, out of memory) is found by redoing its chunk one item at a time on fresh workers,
    and dead-lettered once it has killed max(max_retries, 1) of them; `timeout` (seconds per
    chunk) kills a hung worker. on_error="raise" raises PipelineError listing the failed items
    after the run; on_error="skip" leaves them out of the results and lists them in
    .dead_letters.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    items = iterable if isinstance(iterable, (list, tuple)) else list(iterable)
    if not items:
        return _map_result([], [], {})
    if workers is None:
        workers = len(os.sched_getaffinity(0))
    workers = max(1, min(int(workers), 256))
    name = f"map-{os.getpid()}"

    # Chunks of chunk_size items, one record each: items travel, and results come back, as one
    # pickle per chunk.
    # A chunk whose pickle is larger than a ring accepts is cut smaller, from the size the run
    # reports, and the run starts again (the source fails before any result is committed).
    for _ in builtins.range(4):
        starts = builtins.range(0, len(items), chunk_size)
        chunks = [items[s:s + chunk_size] for s in starts]
        try:
            sink, dead_chunks, report = _run_map(_chunk_runner(fn, max_retries), chunks, workers,
                                                 max_retries, timeout, name)
            break
        except PipelineError as e:
            reason = (e.report.get("failure") or {}).get("reason", "")
            too_big = re.search(r"stage 'items': output record of (\d+) bytes is larger than a "
                                r"ring accepts \((\d+)\)", reason)
            if not too_big or chunk_size == 1:
                raise
            size, limit = int(too_big.group(1)), int(too_big.group(2))
            chunk_size = max(1, min(chunk_size - 1, chunk_size * limit // (2 * size)))
    else:
        raise PipelineError("rivus.map: the items are too large for a ring even in small chunks")
    results: dict[int, Any] = {}
    done_order: list[int] = []
    dead: list[dict] = []
    for c, (values, failures) in zip(sink.seqs, sink.items):
        base = c * chunk_size
        failed = {k for k, _, _ in failures}
        for k, v in enumerate(values):
            if k not in failed:
                results[base + k] = v
                done_order.append(base + k)
        for k, error, attempts in failures:
            dead.append({"index": base + k, "reason": "error", "error": error,
                         "attempts": attempts})

    # A chunk that crashed, hung or raised past Python (SystemExit) was dead-lettered whole: its
    # items are run again one per record, which finds the ones that fail.
    if dead_chunks:
        redo = [i for d in dead_chunks
                for i in builtins.range(d["index"] * chunk_size,
                                        min(len(items), (d["index"] + 1) * chunk_size))]
        sink2, dead2, report2 = _run_map(
            lambda x: fn(x), [items[i] for i in redo], workers, max_retries, timeout, name)
        report["isolation_run"] = report2
        for j, v in zip(sink2.seqs, sink2.items):
            results[redo[j]] = v
            done_order.append(redo[j])
        for d in dead2:
            d["index"] = redo[d["index"]]
            dead.append(d)
    dead.sort(key=lambda d: d["index"])

    failed_ids = {d["index"] for d in dead}
    missing = [i for i in builtins.range(len(items)) if i not in failed_ids and i not in results]
    if missing:
        raise PipelineError(f"rivus.map has no result for {len(missing)} items (first: "
                            f"{missing[0]}) and no dead letter for them: a bug, please report it",
                            dead, report)
    if ordered:
        out = [results[i] for i in builtins.range(len(items)) if i not in failed_ids]
    else:
        out = [results[i] for i in done_order]
    if dead and on_error == "raise":
        first = "; ".join(f"item {d['index']}: {d['error']}" for d in dead[:3])
        raise PipelineError(f"{len(dead)} of {len(items)} items failed: {first}", dead, report)
    return _map_result(out, dead, report)


def _map_result(results: list, dead: list, report: dict) -> MapResult:
    r = MapResult(results)
    r.dead_letters = dead
    r.report = report
    return r
