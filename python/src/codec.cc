#include "codec.h"

namespace rivus::python {
namespace {

// pickle.dumps / pickle.loads, looked up once per process (a forked worker inherits them) and
// never released: a static py::object would be destroyed after the interpreter has finalized.
py::handle pickle_fn(const char* name) {
  static py::handle dumps = py::object(py::module_::import("pickle").attr("dumps")).release();
  static py::handle loads = py::object(py::module_::import("pickle").attr("loads")).release();
  return std::string_view(name) == "dumps" ? dumps : loads;
}

void append_text(py::handle v, std::string& out) {
  if (PyBytes_Check(v.ptr())) {
    out.append(PyBytes_AS_STRING(v.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(v.ptr())));
  } else if (PyUnicode_Check(v.ptr())) {
    // Text that came from bytes by surrogateescape goes back to the same bytes.
    py::object b = py::reinterpret_steal<py::object>(
        PyUnicode_AsEncodedString(v.ptr(), "utf-8", "surrogateescape"));
    if (!b) throw py::error_already_set();
    out.append(PyBytes_AS_STRING(b.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(b.ptr())));
  } else if (PyBool_Check(v.ptr()) || PyLong_Check(v.ptr()) || PyFloat_Check(v.ptr())) {
    out.append(py::str(v).cast<std::string>());
  } else if (PyTuple_Check(v.ptr()) || PyList_Check(v.ptr())) {
    bool first = true;
    for (py::handle item : v) {
      if (!first) out.push_back(',');
      first = false;
      append_text(item, out);
    }
  } else {
    throw py::type_error(
        "a record for a built-in stage must be bytes, str, a number or a tuple of them, not " +
        py::str(py::type::handle_of(v).attr("__name__")).cast<std::string>());
  }
}

}  // namespace

void encode(Wire wire, py::handle v, std::string& out) {
  if (wire == Wire::kText) {
    append_text(v, out);
    return;
  }
  if (PyBytes_Check(v.ptr())) {
    out.push_back('B');
    out.append(PyBytes_AS_STRING(v.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(v.ptr())));
    return;
  }
  if (PyUnicode_Check(v.ptr())) {
    Py_ssize_t n = 0;
    if (const char* s = PyUnicode_AsUTF8AndSize(v.ptr(), &n); s != nullptr) {
      out.push_back('S');
      out.append(s, static_cast<std::size_t>(n));
      return;
    }
    PyErr_Clear();  // lone surrogates have no UTF-8: pickle keeps them exactly
  }
  py::object pickled = pickle_fn("dumps")(v, 5);
  out.push_back('P');
  out.append(PyBytes_AS_STRING(pickled.ptr()),
             static_cast<std::size_t>(PyBytes_GET_SIZE(pickled.ptr())));
}

py::object decode(Wire wire, std::string_view bytes) {
  if (wire == Wire::kText) return py::bytes(bytes.data(), bytes.size());
  if (bytes.empty()) throw py::value_error("an empty record where a tagged Python value was due");
  const std::string_view body = bytes.substr(1);
  switch (bytes[0]) {
    case 'B':
      return py::bytes(body.data(), body.size());
    case 'S': {
      PyObject* s = PyUnicode_DecodeUTF8(body.data(), static_cast<Py_ssize_t>(body.size()),
                                         "surrogateescape");
      if (s == nullptr) throw py::error_already_set();
      return py::reinterpret_steal<py::object>(s);
    }
    case 'P': {
      py::memoryview view =
          py::memoryview::from_memory(body.data(), static_cast<ssize_t>(body.size()));
      return pickle_fn("loads")(view);
    }
    default:
      throw py::value_error("a record that is not a tagged Python value (first byte " +
                            std::to_string(static_cast<unsigned char>(bytes[0])) + ")");
  }
}

}  // namespace rivus::python
