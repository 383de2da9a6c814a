#include "app/toml_tables.h"

#include <stdexcept>

namespace cvnode::detail {

std::string toml_tables(const std::vector<std::pair<std::string, std::string>>& key_values) {
  std::vector<std::pair<std::string, std::string>> tables;  // section, its lines
  for (const auto& [key, value] : key_values) {
    const auto dot = key.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == key.size())
      throw std::logic_error("configuration key '" + key + "' is not section.name");
    const std::string section = key.substr(0, dot);
    auto t = tables.begin();
    while (t != tables.end() && t->first != section) ++t;
    if (t == tables.end()) t = tables.insert(t, {section, {}});
    t->second += key.substr(dot + 1) + " = " + value + "\n";
  }
  std::string out;
  for (const auto& [section, lines] : tables) out += (out.empty() ? "[" : "\n[") + section + "]\n" + lines;
  return out;
}

}  // namespace cvnode::detail
