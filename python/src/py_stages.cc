#include "py_stages.h"

#include <atomic>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>

#include "rivus/runtime/committed_file.h"
#include "rivus/runtime/record.h"
#include "rivus/runtime/stage.h"

namespace rivus::python {
namespace {

// A reference that is never released: the registry lives until exit, past the interpreter.
PyObject* keep(const py::object& o) {
  PyObject* p = o.ptr();
  Py_XINCREF(p);
  return p;
}

std::string next_name(const char* kind) {
  static std::atomic<int> n{0};
  return std::string("py.") + kind + "." + std::to_string(++n);
}

void flush_python_output() {
  for (const char* name : {"stdout", "stderr"}) {
    PyObject* f = PySys_GetObject(name);  // borrowed
    if (f == nullptr || f == Py_None) continue;
    PyObject* r = PyObject_CallMethod(f, "flush", nullptr);
    if (r == nullptr) PyErr_Clear();
    Py_XDECREF(r);
  }
}

std::uint64_t key_of(PyObject* key_fn, py::handle value) {
  py::object k = py::reinterpret_borrow<py::object>(key_fn)(value);
  std::string text;
  encode(Wire::kText, k, text);
  return hash_bytes(text);
}

struct Shared {
  PyObject* target = nullptr;
  bool is_class = false;
  bool map_mode = false;
  Wire in = Wire::kTagged;
  Wire out = Wire::kTagged;
  PyObject* out_key = nullptr;  // nullptr: no key function
};

class PythonStage final : public Stage {
 public:
  explicit PythonStage(const Shared& s) : s_(s) {}
  Status open(StageContext& ctx) override {
    try {
      py::object target = py::reinterpret_borrow<py::object>(s_.target);
      if (!s_.is_class) {
        fn_ = target;
        return Status::Ok();
      }
      instance_ = target();
      instance_.attr("worker_index") = ctx.worker_index;
      instance_.attr("workers") = ctx.workers;
      instance_.attr("generation") = ctx.generation;
      instance_.attr("stage_name") = ctx.stage;
      if (py::hasattr(instance_, "setup")) instance_.attr("setup")();
      fn_ = instance_.attr("process");
      return Status::Ok();
    } catch (py::error_already_set& e) {
      return Status::InvalidArgument("setup failed: " + describe_python_error(e));
    }
  }
  void process(const Batch& batch, Emitter& out) override {
    for (const Record& r : batch) {
      try {
        py::object v = decode(s_.in, r.data);
        py::object result = fn_(v);
        if (s_.map_mode) {
          emit(r, result, out);
        } else if (result.is_none()) {
          continue;
        } else if (PyList_Check(result.ptr())) {
          for (py::handle item : result) emit(r, item, out);
        } else {
          emit(r, result, out);
        }
      } catch (py::error_already_set& e) {
        throw RecordError(describe_python_error(e));
      }
    }
  }
  void close() override {
    if (instance_ && py::hasattr(instance_, "teardown")) {
      try {
        instance_.attr("teardown")();
      } catch (py::error_already_set& e) {
        PyErr_Clear();
      }
    }
    flush_python_output();
  }

 private:
  void emit(const Record& from, py::handle value, Emitter& out) {
    buf_.clear();
    encode(s_.out, value, buf_);
    if (s_.out_key != nullptr) {
      out.emit_keyed(from, buf_, key_of(s_.out_key, value));
    } else {
      out.emit(from, buf_);
    }
  }

  Shared s_;
  py::object fn_;
  py::object instance_;
  std::string buf_;
};

class PythonSource final : public Source {
 public:
  PythonSource(PyObject* factory, Wire out, PyObject* out_key)
      : factory_(factory), out_(out), out_key_(out_key) {}
  Status open(StageContext& ctx) override {
    position_ = ctx.position;
    try {
      it_ = py::reinterpret_borrow<py::object>(factory_)(position_);
      it_ = py::reinterpret_steal<py::object>(PyObject_GetIter(it_.ptr()));
      if (!it_) throw py::error_already_set();
      return Status::Ok();
    } catch (py::error_already_set& e) {
      return Status::InvalidArgument("the source's iterable failed: " + describe_python_error(e));
    }
  }
  bool produce(Emitter& out, std::size_t max_records) override {
    try {
      for (std::size_t i = 0; i < max_records; ++i) {
        py::object item = py::reinterpret_steal<py::object>(PyIter_Next(it_.ptr()));
        if (!item) {
          if (PyErr_Occurred()) throw py::error_already_set();
          return false;
        }
        buf_.clear();
        encode(out_, item, buf_);
        Record r{buf_, 0, out_key_ != nullptr ? key_of(out_key_, item) : 0, 0};
        out.emit(r);
        ++position_;
      }
      return true;
    } catch (py::error_already_set& e) {
      throw std::runtime_error("item " + std::to_string(position_) +
                               " of the source failed: " + describe_python_error(e));
    }
  }
  std::uint64_t position() const override { return position_; }
  void close() override { flush_python_output(); }

 private:
  PyObject* factory_;
  Wire out_;
  PyObject* out_key_;
  py::object it_;
  std::uint64_t position_ = 0;
  std::string buf_;
};

// Frames of [seq u64][length u32][bytes], little-endian as the machine, exactly once like the
// `file` sink (rivus/runtime/committed_file.h).
class CollectSink final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    return file_.open(ctx.params->get_string("path"), ctx.position, "collect", 0600);
  }
  void process(const Batch& batch, Emitter&) override {
    for (const Record& r : batch) {
      const auto len = static_cast<std::uint32_t>(r.data.size());
      file_.append(std::string_view(reinterpret_cast<const char*>(&r.seq), sizeof r.seq));
      file_.append(std::string_view(reinterpret_cast<const char*>(&len), sizeof len));
      file_.append(r.data);
    }
  }
  std::uint64_t checkpoint() override { return file_.flush(); }

 private:
  CommittedFile file_;
};

// "pkg.mod:attr.sub" imported; messages name what is missing.
py::object resolve_target(const std::string& spec) {
  const auto colon = spec.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size()) {
    throw std::invalid_argument(
        "function must be 'module:name' (e.g. 'mypkg.parse:parse_line'), not '" + spec + "'");
  }
  const std::string module = spec.substr(0, colon);
  py::object target;
  try {
    target = py::module_::import(module.c_str());
  } catch (py::error_already_set& e) {
    throw std::invalid_argument("function '" + spec + "': cannot import module '" + module +
                                "': " + describe_python_error(e));
  }
  std::string path = spec.substr(colon + 1);
  for (std::size_t from = 0; from <= path.size();) {
    const auto dot = path.find('.', from);
    const std::string part = path.substr(from, dot == std::string::npos ? dot : dot - from);
    if (!py::hasattr(target, part.c_str())) {
      throw std::invalid_argument("function '" + spec + "': module '" + module + "' has no '" +
                                  path.substr(0, dot == std::string::npos ? path.size() : dot) +
                                  "'");
    }
    target = target.attr(part.c_str());
    if (dot == std::string::npos) break;
    from = dot + 1;
  }
  if (!PyCallable_Check(target.ptr())) {
    throw std::invalid_argument("function '" + spec + "' is not callable");
  }
  return target;
}

bool is_stage_class(py::handle t) { return PyType_Check(t.ptr()) && py::hasattr(t, "process"); }

// The Python object is found in open(), where the parameters are known.
class YamlPythonStage final : public Stage {
 public:
  Status open(StageContext& ctx) override {
    try {
      target_ = resolve_target(ctx.params->get_string("function"));
    } catch (const std::invalid_argument& e) {
      return Status::InvalidArgument(e.what());
    }
    Shared s;
    s.target = target_.ptr();
    s.is_class = is_stage_class(target_);
    s.in = Wire::kText;
    s.out = Wire::kText;
    inner_.emplace(s);
    return inner_->open(ctx);
  }
  void process(const Batch& batch, Emitter& out) override { inner_->process(batch, out); }
  void close() override {
    if (inner_) inner_->close();
  }

 private:
  py::object target_;
  std::optional<PythonStage> inner_;
};

void add(StageInfo info) {
  if (Status s = StageRegistry::global().add(std::move(info)); !s.ok()) {
    throw std::runtime_error(s.message());
  }
}

}  // namespace

std::string describe_python_error(py::error_already_set& e) {
  std::string text;
  try {
    text = py::str(e.type().attr("__name__")).cast<std::string>();
    const std::string message = py::str(e.value()).cast<std::string>();
    if (!message.empty()) text += ": " + message;
    if (e.trace()) {
      py::object frames = py::module_::import("traceback").attr("extract_tb")(e.trace());
      if (py::len(frames) > 0) {
        py::object last = frames[py::int_(-1)];
        text += " (line " + py::str(last.attr("lineno")).cast<std::string>() + " in " +
                py::str(last.attr("name")).cast<std::string>() + ", " +
                py::str(last.attr("filename")).cast<std::string>() + ")";
      }
    }
  } catch (py::error_already_set&) {
    PyErr_Clear();
    if (text.empty()) text = "a Python exception that cannot be described";
  }
  return text;
}

std::string register_python_stage(PyStageConfig c) {
  Shared s;
  s.target = keep(c.target);
  s.is_class = c.is_class;
  s.map_mode = c.map_mode;
  s.in = c.in;
  s.out = c.out;
  s.out_key = c.out_key.is_none() ? nullptr : keep(c.out_key);
  StageInfo info;
  info.name = next_name(c.is_class ? "class" : "fn");
  info.role = StageRole::kTransform;
  info.summary = "Python stage";
  info.make_stage = [s] { return std::make_unique<PythonStage>(s); };
  const std::string name = info.name;
  add(std::move(info));
  return name;
}

std::string register_python_source(py::object factory, Wire out, py::object out_key) {
  PyObject* f = keep(factory);
  PyObject* k = out_key.is_none() ? nullptr : keep(out_key);
  StageInfo info;
  info.name = next_name("source");
  info.role = StageRole::kSource;
  info.summary = "Python source";
  info.max_workers = 1;
  info.make_source = [f, out, k] { return std::make_unique<PythonSource>(f, out, k); };
  const std::string name = info.name;
  add(std::move(info));
  return name;
}

void register_yaml_python_stage() {
  if (StageRegistry::global().find("python") != nullptr) return;
  StageInfo info;
  info.name = "python";
  info.role = StageRole::kTransform;
  info.summary = "a Python function or class (python3 -m rivus run; docs/python.md)";
  info.params = {{"function", ParamType::kString, "",
                  "module:name of a function item -> output, or of a class with process(item)",
                  true}};
  info.make_stage = [] { return std::make_unique<YamlPythonStage>(); };
  info.check = [](const Params& p) -> Status {
    py::gil_scoped_acquire gil;
    try {
      (void)resolve_target(p.get_string("function"));
      return Status::Ok();
    } catch (const std::invalid_argument& e) {
      return Status::InvalidArgument(e.what());
    }
  };
  add(std::move(info));
}

void register_collect_sink() {
  if (StageRegistry::global().find("py.collect") != nullptr) return;
  StageInfo info;
  info.name = "py.collect";
  info.role = StageRole::kSink;
  info.summary = "collects records for the Python caller";
  info.params = {{"path", ParamType::kString, "", "file of framed records", true}};
  info.max_workers = 1;
  info.make_stage = [] { return std::make_unique<CollectSink>(); };
  add(std::move(info));
}

}  // namespace rivus::python
