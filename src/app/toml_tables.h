// The TOML writer of the configuration files (Config::to_toml, CnfFitConfig::to_toml): keys
// "section.name" with their values already printed as TOML, grouped into one table per section.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace cvnode::detail {

// One [section] table per section, in the order the sections first appear, each holding all its
// keys in list order, wherever in the list they stand: TOML refuses a table defined twice, so a
// key list whose section is split (a key added at the end of the list, a rebase) must not write a
// second [section] header. Throws std::logic_error for a key without "section.".
std::string toml_tables(const std::vector<std::pair<std::string, std::string>>& key_values);

}  // namespace cvnode::detail
