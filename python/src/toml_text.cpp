#include "toml_text.h"

#include <cmath>
#include <cstdio>

namespace cvnode::python {

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string key_text(py::handle k, const std::string& where) {
  if (!py::isinstance<py::str>(k)) fail(Kind::Config, where + ": keys must be strings, got " + std::string(py::repr(k)));
  return k.cast<std::string>();
}

}  // namespace

std::string toml_value(py::handle v, const std::string& key) {
  py::module_ np = py::module_::import("numpy");
  if (py::isinstance<py::bool_>(v) || py::isinstance(v, np.attr("bool_"))) return v.cast<bool>() ? "true" : "false";
  if (py::isinstance<py::int_>(v) || py::isinstance(v, np.attr("integer"))) return py::str(py::int_(py::reinterpret_borrow<py::object>(v)));
  if (py::isinstance<py::float_>(v) || py::isinstance(v, np.attr("floating"))) {
    const double d = py::float_(py::reinterpret_borrow<py::object>(v)).cast<double>();
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    return py::repr(py::float_(d));
  }
  if (py::isinstance<py::str>(v)) return quoted(v.cast<std::string>());
  if (py::hasattr(v, "__fspath__")) return quoted(py::str(py::module_::import("os").attr("fspath")(v)));
  if (py::isinstance<py::dict>(v)) {
    std::string out = "{";
    bool first = true;
    for (auto item : py::reinterpret_borrow<py::dict>(v)) {
      const std::string k = key_text(item.first, key);
      out += (first ? " " : ", ") + k + " = " + toml_value(item.second, key + "." + k);
      first = false;
    }
    return out + (first ? "}" : " }");
  }
  if (py::isinstance<py::array>(v)) return toml_value(v.attr("tolist")(), key);
  if (py::isinstance<py::list>(v) || py::isinstance<py::tuple>(v)) {
    std::string out = "[";
    bool first = true;
    for (py::handle item : v) {
      out += (first ? "" : ", ") + toml_value(item, key);
      first = false;
    }
    return out + "]";
  }
  fail(Kind::Config, key + ": cannot use a value of type " + std::string(py::str(v.get_type().attr("__name__"))) +
                         " (numbers, booleans, strings, paths and lists of them)");
}

std::string toml_section(const std::string& name, py::handle keys) {
  if (!py::isinstance<py::dict>(keys))
    fail(Kind::Config, "[" + name + "]: expected a dict of keys, got " + std::string(py::repr(keys)));
  std::string out = "[" + name + "]\n";
  for (auto item : py::reinterpret_borrow<py::dict>(keys)) {
    const std::string k = key_text(item.first, name);
    out += quoted(k) + " = " + toml_value(item.second, name + "." + k) + "\n";
  }
  return out;
}

std::string toml_document(py::handle sections, const std::string& what) {
  if (!py::isinstance<py::dict>(sections))
    fail(Kind::Config, what + ": expected a dict of sections, got " + std::string(py::repr(sections.get_type())));
  std::string out;
  for (auto item : py::reinterpret_borrow<py::dict>(sections)) {
    const std::string s = key_text(item.first, what);
    if (!py::isinstance<py::dict>(item.second))
      fail(Kind::Config, what + ": '" + s + "' must be a section (a dict of keys), e.g. {\"solver\": {\"rtol\": 1e-6}}");
    out += toml_section(s, item.second) + "\n";
  }
  return out;
}

}  // namespace cvnode::python
