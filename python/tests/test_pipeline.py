"""Python pipelines: Python and built-in stages mixed, class stages, collect, crashes, stat."""

import collections
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

import rivus

HERE = pathlib.Path(__file__).resolve().parent


def parse(line: bytes):
    key, value = line.split(b",")
    if value == b"skip":
        return None
    return [(key.decode(), int(value))] * (2 if key == b"k0" else 1)


class Scale(rivus.Stage):
    def setup(self):
        self.factor = 3
        self.calls = 0

    def process(self, item):
        key, value = item
        return f"{key},{value * self.factor}"


def write_input(path, n, keys):
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"k{i % keys},{'skip' if i % 17 == 0 else i}\n")


def expected_sums(n, keys, size):
    per_key = collections.defaultdict(list)
    for i in range(n):
        if i % 17 == 0:
            continue
        k = f"k{i % keys}"
        per_key[k] += [i * 3] * (2 if k == "k0" else 1)
    out = []
    for k, values in per_key.items():
        for s in range(0, len(values), size):
            out.append(f"{k},{sum(values[s:s + size])}")
    return sorted(out)


def test_python_and_builtin_stages_mixed(tmp_path):
    n, keys, size = 20_000, 13, 5
    write_input(tmp_path / "in.txt", n, keys)
    out = tmp_path / "out.txt"
    report = (rivus.lines(str(tmp_path / "in.txt"))
              >> rivus.stage(parse, workers=2, batch=100)
              >> rivus.stage(Scale, workers=2)
              >> rivus.window(size=size, aggregate="sum", field=1, key_by=0, workers=2,
                              ordered=True)
              >> rivus.to_file(str(out))).run(name="pymixed")
    assert report["status"] == "finished", report.get("failure")
    assert sorted(out.read_text().splitlines()) == expected_sums(n, keys, size)
    names = [s["name"] for s in report["stages"]]
    assert names == ["lines", "parse", "Scale", "window", "file"]


def test_collect_brings_records_back_and_key_by_a_function(tmp_path):
    sink = rivus.collect()

    class Tag(rivus.Stage):
        def setup(self):
            self.setups = getattr(self, "setups", 0) + 1

        def process(self, item):
            return (item % 5, os.getpid(), self.setups)

    report = (rivus.from_iterable(range(5000))
              >> rivus.stage(Tag, workers=3, key_by=lambda x: x % 5)
              >> sink).run(name="pycollect")
    assert report["status"] == "finished", report.get("failure")
    assert len(sink.items) == 5000
    assert all(setups == 1 for _, _, setups in sink.items)
    owner = {}
    for key, pid, _ in sink.items:
        assert owner.setdefault(key, pid) == pid, "a key went to two workers"
    ordered = rivus.collect(ordered=True)
    (rivus.range(1000) >> rivus.stage(lambda b: int(b) * 2, workers=2) >> ordered).run(
        name="pyordered")
    assert ordered.items == [i * 2 for i in range(1000)]
    assert ordered.seqs == list(range(1000))


def test_a_function_key_after_a_builtin_stage_is_refused():
    with pytest.raises(ValueError, match="key_by with a function needs a Python stage"):
        (rivus.range(10) >> rivus.stage(int, key_by=lambda x: x) >> rivus.discard()).run()


def test_spec_errors_name_the_stage():
    with pytest.raises(ValueError, match="^unknown parameter 'no_such_param' for stage 'window'"):
        (rivus.range(10) >> rivus.window(size=3, no_such_param=1) >> rivus.discard()).run()


def run_script(tmp_path, body, timeout=240):
    script = tmp_path / "job.py"
    script.write_text(body)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(pathlib.Path(rivus.__file__).resolve().parents[1])
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=tmp_path)


# Workers of a Python pipeline with a keyed window are SIGKILLed while it runs. The source pauses
# at five points until a killer process (started before the run; it kills a worker by name, waits
# for its replacement, and lets the source go on) has landed one kill, so each lands mid-stream.
CHAOS = r'''
import os, pathlib, subprocess, sys, time, json
import rivus
here = pathlib.Path.cwd()
N, PAUSES = 30000, [5000, 10000, 15000, 20000, 25000]

def items():
    for i in range(N):
        if i in PAUSES:
            go = here / f"go-{i}"
            (here / f"paused-{i}").touch()
            deadline = time.monotonic() + 30  # the killer lets it go on long before
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.005)
        yield i

def tag(i):
    return (f"k{i % 7}", i)

def run(name, kill):
    if kill:
        subprocess.Popen([sys.executable, str(here / "killer.py"), str(os.getpid()),
                          json.dumps(PAUSES), os.environ["RIVUS_BIN"], name])
    else:
        for p in PAUSES:
            (here / f"go-{p}").touch()
    out = here / f"{name}.txt"
    report = (rivus.source(items)
              >> rivus.stage(tag, workers=2)
              >> rivus.window(size=9, aggregate="sum", field=1, key_by=0, workers=2, ordered=True)
              >> rivus.stage(lambda b: b.decode().upper(), workers=2)
              >> rivus.to_file(str(out))).run(name=name, restart={"max_restarts": 1000})
    for p in PAUSES:
        for f in (here / f"go-{p}", here / f"paused-{p}"):
            f.unlink(missing_ok=True)
    return report, sorted(out.read_text().splitlines())

clean_report, clean = run("pyclean", kill=False)
chaos_report, chaos = run("pychaos", kill=True)
print(json.dumps({"clean": clean_report["status"], "chaos": chaos_report["status"],
                  "same": clean == chaos, "lines": len(clean),
                  "restarts": sum(s["restarts"] for s in chaos_report["stages"])}))
'''

KILLER = r'''
import json, os, signal, subprocess, sys, time, pathlib
here = pathlib.Path.cwd()
parent, pauses, rivus_bin, name = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
victims = ["tag#0", "window#1", "lambda#0", "window#0", "tag#1"]

def children(comm):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = open(f"/proc/{pid}/stat").read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent and open(f"/proc/{pid}/comm").read().strip() == comm:
                found.append(int(pid))
        except (OSError, IndexError, ValueError):
            pass
    return found

def wait_for(pred, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.005)
    return None

for n, p in enumerate(pauses):
    if wait_for(lambda: (here / f"paused-{p}").exists()):
        if n == 0:
            stat = subprocess.run([rivus_bin, "stat", name, "--json"], capture_output=True,
                                  text=True, timeout=30)
            (here / "stat.json").write_text(stat.stdout)
        victim = victims[n % len(victims)]
        pids = wait_for(lambda: children(victim))
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            wait_for(lambda: [q for q in children(victim) if q != pids[0]])
            with open(here / "kills", "a") as f:
                f.write(victim + "\n")
    (here / f"go-{p}").touch()
'''


def test_killed_python_workers_give_the_clean_output(tmp_path, rivus_bin):
    (tmp_path / "killer.py").write_text(KILLER)
    os.environ["RIVUS_BIN"] = rivus_bin
    r = run_script(tmp_path, CHAOS)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    kills = (tmp_path / "kills").read_text().split()
    assert len(kills) == 5, kills
    assert result["clean"] == "finished" and result["chaos"] == "finished", result
    assert result["lines"] > 3000
    assert result["same"], "the output after SIGKILLs differs from the clean run's"
    assert result["restarts"] == 5
    stat = json.loads((tmp_path / "stat.json").read_text())
    assert [s["name"] for s in stat["stages"]] == ["items", "tag", "window", "lambda", "file"]


def test_worker_prints_reach_stdout(tmp_path):
    r = run_script(tmp_path, r'''
import rivus
def shout(x):
    print(f"seen {x}")
    return x
(rivus.from_iterable(range(3)) >> rivus.stage(shout) >> rivus.discard()).run(name="pyprint")
''', timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split("\n")[:3]) == ["seen 0", "seen 1", "seen 2"]


def test_ctrl_c_drains_the_run_and_raises_keyboard_interrupt(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(r'''
import pathlib, time
import rivus
here = pathlib.Path.cwd()
def slow():
    for i in range(100000):
        if i == 10:
            (here / "started").touch()
        time.sleep(0.002)
        yield i
try:
    (rivus.source(slow) >> rivus.stage(lambda x: x + 1) >> rivus.to_file("out.txt")).run(
        name="pyint")
except KeyboardInterrupt as e:
    print("interrupted:", e)
''')
    env = dict(os.environ)
    env["PYTHONPATH"] = str(pathlib.Path(rivus.__file__).resolve().parents[1])
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(2)
    out, err = proc.communicate(timeout=60)
    assert "interrupted: pipeline 'pyint' was interrupted" in out, err[-2000:]
    lines = (tmp_path / "out.txt").read_text().split()
    assert 10 <= len(lines) < 100000
    assert sorted(map(int, lines)) == list(range(1, len(lines) + 1)), \
        "the drained output is every record the source read, once"
