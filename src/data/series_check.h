// The consistency rules of one series, shared by Dataset::add and the file reader so that a
// series is judged the same whether built in memory or read from disk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cvnode::detail {

// Empty when the series is usable, else one phrase naming the field and the value: at least one
// time, finite t0 <= times[0], finite strictly increasing times, mask entries 0 or 1, and every
// observed value finite. values and mask are n x channels, row-major.
std::string check_series_rows(double t0, const double* times, std::size_t n, const double* values,
                              const std::uint8_t* mask, int channels);

// Same for control inputs: finite strictly increasing times and finite values (n x width).
std::string check_control_rows(const double* times, std::size_t n, const double* values, int width);

// "series 'ID' (index i)": how messages name a series.
std::string series_label(const std::string& id, std::size_t index);

}  // namespace cvnode::detail
