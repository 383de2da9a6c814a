// The consistency rules of one series, shared by Dataset::add and the file reader so that a
// series is judged the same whether built in memory or read from disk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cvnode/dataset.h"

namespace cvnode::detail {

// Empty when the series is usable, else one phrase naming the field and the value: at least one
// time, finite t0 <= times[0], finite strictly increasing times, mask entries 0 or 1, and every
// observed value finite. values and mask are n x channels, row-major.
std::string check_series_rows(double t0, const double* times, std::size_t n, const double* values,
                              const std::uint8_t* mask, int channels);

// Same for control inputs: finite strictly increasing times and finite values (n x width).
std::string check_control_rows(const double* times, std::size_t n, const double* values, int width);

// Event records as the column arrays of the file format (and of check_event_rows).
struct EventColumns {
  std::vector<double> time, amount, rate;
  std::vector<std::int64_t> compartment;
  std::vector<std::uint8_t> kind;
  EventColumns() = default;
  EventColumns(const EventRecord* records, std::size_t n);
  std::size_t size() const { return time.size(); }
};

// Same for events: known kinds, finite times within [t0, last_time] in non-decreasing order, a
// compartment index below `compartments`, finite amounts >= 0 (0 for a reset) and rates >= 0.
// The arrays are n long; `names` (may be empty) are the compartment names for the message.
std::string check_event_rows(double t0, double last_time, const double* times, const std::int64_t* compartment,
                             const double* amount, const double* rate, const std::uint8_t* kind, std::size_t n,
                             const std::vector<std::string>& names);

// "series 'ID' (index i)": how messages name a series.
std::string series_label(const std::string& id, std::size_t index);

}  // namespace cvnode::detail
