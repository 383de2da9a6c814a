// Sizes checked before they are allocated: a request that cannot fit in the machine's memory is
// refused with the number instead of ending in a bare std::bad_alloc (or in swap) much later.
#pragma once

#include <cstdint>
#include <string>

namespace cvnode::io {

// Physical memory of the machine, or the cgroup's memory limit when that is smaller.
std::uint64_t machine_memory_bytes();

// "1.5 GB", "320 MB", "12 kB": a byte count for messages.
std::string human_bytes(double bytes);

// "WHAT needs about X, more than this machine's memory (Y)", or "" when `bytes` fits.
std::string memory_shortfall(double bytes, const std::string& what);

// Throws OptionsError "WHAT needs about X, more than this machine's memory (Y)" when `bytes`
// exceeds the machine's memory. `bytes` may be +inf (a product that overflowed).
void require_memory(double bytes, const std::string& what);

}  // namespace cvnode::io
