// Python values as TOML text, so that keyword arguments and configuration dicts go through the
// library's own configuration parser (src/config): the same keys, defaults, checks and messages
// as a configuration file.
#pragma once

#include <string>

#include "convert.h"

namespace cvnode::python {

// One value: bool, int, float (repr: round-trips exactly; nan, inf), str, os.PathLike, list,
// tuple or NumPy array (nested), dict (inline table). Throws ConfigError naming `key` otherwise.
std::string toml_value(py::handle value, const std::string& key);
// {"section": {"key": value}} as a TOML document.
std::string toml_document(py::handle sections, const std::string& what);
// {"key": value} as the lines of one section "[name]".
std::string toml_section(const std::string& name, py::handle keys);

}  // namespace cvnode::python
