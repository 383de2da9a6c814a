#include "data/memory_check.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "cvnode/errors.h"

namespace cvnode::io {

std::uint64_t machine_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGESIZE);
  std::uint64_t total = pages > 0 && size > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(size)
                                              : (std::uint64_t(1) << 40);
  // A container's limit (cgroup v2; "max" when there is none).
  std::ifstream cg("/sys/fs/cgroup/memory.max");
  std::string limit;
  if (cg >> limit && !limit.empty() && limit.find_first_not_of("0123456789") == std::string::npos) {
    const std::uint64_t l = std::stoull(limit);
    if (l > 0 && l < total) total = l;
  }
  return total;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"bytes", "kB", "MB", "GB", "TB", "PB", "EB"};
  int u = 0;
  while (bytes >= 1000 && u < 6) {
    bytes /= 1000;
    ++u;
  }
  char buf[64];
  if (!(bytes < 1e300)) return "more than 1e300 bytes";
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.3g %s", bytes, units[u]);
  return buf;
}

std::string memory_shortfall(double bytes, const std::string& what) {
  const double have = static_cast<double>(machine_memory_bytes());
  if (bytes <= have) return "";
  return what + " needs about " + human_bytes(bytes) + ", more than this machine's memory (" + human_bytes(have) + ")";
}

void require_memory(double bytes, const std::string& what) {
  if (std::string why = memory_shortfall(bytes, what); !why.empty()) throw OptionsError(why);
}

}  // namespace cvnode::io
