#include "core/names.h"

namespace cvnode::detail {

std::string choices(const std::vector<std::string>& names) {
  std::string s;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) s += i + 1 == names.size() ? " or " : ", ";
    s += names[i];
  }
  return s;
}

void unknown_name(const char* what, const std::string& name, const std::vector<std::string>& names) {
  throw OptionsError(std::string("unknown ") + what + " '" + name + "' (expected " + choices(names) + ")");
}

}  // namespace cvnode::detail
