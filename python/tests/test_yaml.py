"""`use: python` in a YAML spec: `rivus run` hands the spec to `python3 -m rivus`, which runs
the same stages as the Python API."""

import os
import pathlib
import subprocess
import sys

import rivus

MODULE = '''
def parse(line: bytes):
    key, value = line.split(b",")
    return None if int(value) % 11 == 0 else f"{key.decode()},{int(value) * 3}"

class Upper:
    def setup(self):
        self.prefix = "W"
    def process(self, line: bytes):
        return self.prefix + line.decode().upper()
'''


def env_for(tmp_path):
    env = dict(os.environ)
    package = str(pathlib.Path(rivus.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), package])
    return env


def write_case(tmp_path):
    (tmp_path / "jobmod.py").write_text(MODULE)
    with open(tmp_path / "in.txt", "w") as f:
        for i in range(5000):
            f.write(f"k{i % 7},{i}\n")


def test_a_yaml_python_stage_equals_the_python_pipeline(tmp_path, rivus_bin):
    write_case(tmp_path)
    spec = tmp_path / "p.yaml"
    spec.write_text(f'''name: yamlpython
stages:
  - {{name: src, use: lines, with: {{path: {tmp_path / "in.txt"}}}}}
  - {{name: parse, use: python, with: {{function: "jobmod:parse"}}, workers: 2}}
  - {{name: sums, use: window, with: {{size: 4, aggregate: sum, field: 1}}, key_by: {{field: 0}},
     workers: 2, ordered: true}}
  - {{name: up, use: python, with: {{function: "jobmod:Upper"}}}}
  - {{name: out, use: file, with: {{path: {tmp_path / "yaml.txt"}}}}}
''')
    r = subprocess.run([rivus_bin, "run", str(spec), "--quiet", "--report",
                        str(tmp_path / "r.json")], capture_output=True, text=True, timeout=120,
                       env=env_for(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]

    sys.path.insert(0, str(tmp_path))
    try:
        import jobmod
        (rivus.lines(str(tmp_path / "in.txt"))
         >> rivus.stage(jobmod.parse, workers=2)
         >> rivus.window(size=4, aggregate="sum", field=1, key_by=0, workers=2, ordered=True)
         >> rivus.stage(jobmod.Upper)
         >> rivus.to_file(str(tmp_path / "py.txt"))).run(name="pythonapi")
    finally:
        sys.path.remove(str(tmp_path))
    yaml_lines = sorted((tmp_path / "yaml.txt").read_text().splitlines())
    assert len(yaml_lines) > 1000
    assert yaml_lines == sorted((tmp_path / "py.txt").read_text().splitlines())
    assert all(line.startswith("WK") for line in yaml_lines)


def test_validate_names_a_missing_module_or_function_with_its_place(tmp_path, rivus_bin):
    write_case(tmp_path)
    for function, says in (("nomod:parse", "cannot import module 'nomod'"),
                           ("jobmod:nope", "module 'jobmod' has no 'nope'"),
                           ("jobmod", "function must be 'module:name'")):
        spec = tmp_path / "bad.yaml"
        spec.write_text("name: yamlbad\n"
                        "stages:\n"
                        "  - {name: src, use: range, with: {count: 3}}\n"
                        f"  - {{name: f, use: python, with: {{function: \"{function}\"}}}}\n"
                        "  - {name: out, use: discard}\n")
        r = subprocess.run([rivus_bin, "validate", str(spec)], capture_output=True, text=True,
                           timeout=60, env=env_for(tmp_path), cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert f"bad.yaml:4:" in r.stderr and says in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_python_m_rivus_is_the_cli(tmp_path):
    r = subprocess.run([sys.executable, "-m", "rivus", "--version"], capture_output=True,
                       text=True, timeout=60, env=env_for(tmp_path))
    assert r.returncode == 0 and r.stdout.startswith("rivus "), r.stderr
