// Series moved to a common start t = 0 for the stacked mode, which solves several series as one
// initial-value problem and so needs one t0 (autonomous dynamics only: the solution of a series
// started at t0 is the one started at 0, shifted).
#pragma once

#include <vector>

#include "cvnode/observations.h"

namespace cvnode::detail {

// Every series to t0 = 0 (observation, event and control-knot times and a finite t_end shifted
// by -t0), all of them then rounded to one dyadic grid q, so that offsets equal in exact
// arithmetic (windows of series on a common time grid) become equal doubles rather than
// round-off neighbours, which a stacked solve would answer as separate output times. The grid is
// relative: q = 2^(e - 40) with 2^e above the largest |time| of all series (the round-off of
// t - t0 is ~2^(e - 52): q is 4096 times it), and at most the largest power of two below 1/64 of
// the smallest gap between two instants of a series, so rounding moves a time by at most 1/128
// of a gap: it never merges or reorders observations and events, whatever the time unit. A no-op
// when every series already starts at 0.
void shift_to_common_start(std::vector<Trajectory>& series);

}  // namespace cvnode::detail
