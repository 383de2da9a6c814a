// The HDF5 dataset format of docs/dataset-format.md: concatenated ragged arrays with per-series
// offsets, read whole or as a contiguous range of series (hyperslabs), written atomically.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <set>
#include <unordered_set>

#include "cvnode/dataset.h"
#include "cvnode/errors.h"
#include "data/atomic_file.h"
#include "data/hdf5_raii.h"
#include "data/series_check.h"

namespace cvnode {

namespace {

const char* const kFormatName = "cvnode-dataset";
const std::set<std::string> kAttributes = {"format", "format_version", "channel_names", "channel_units",
                                           "covariate_names", "control_names", "control_interpolation",
                                           "provenance", "normalized"};
const std::set<std::string> kDatasets = {"series_id", "t0", "offsets", "times", "values", "mask",
                                         "initial_state", "covariates", "control_offsets", "control_times",
                                         "control_values", "normalization_mean", "normalization_std"};
// Added by format version 2: the event tables.
const std::set<std::string> kAttributesV2 = {"compartment_names"};
const std::set<std::string> kEventDatasets = {"event_offsets", "event_times", "event_compartment",
                                              "event_amount", "event_rate", "event_kind"};

std::string shape_text(const std::vector<hsize_t>& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? " x " : "") + std::to_string(s[i]);
  return s.empty() ? "scalar" : out;
}

}  // namespace

// Reads and writes the private arrays of Dataset.
struct DatasetIo {
  const h5::File& f;
  [[noreturn]] void fail(const std::string& what) const { throw DataError(f.path() + ": " + what); }

  // Checks that `name` has the given shape (a dimension < 0 is free) and returns it.
  std::vector<hsize_t> expect_shape(const std::string& name, std::vector<long> want, const char* meaning) const {
    const auto got = f.shape(name);
    bool ok = got.size() == want.size();
    for (std::size_t i = 0; ok && i < want.size(); ++i) ok = want[i] < 0 || static_cast<long>(got[i]) == want[i];
    if (!ok) {
      std::string w;
      for (std::size_t i = 0; i < want.size(); ++i)
        w += (i ? " x " : "") + (want[i] < 0 ? std::string("any") : std::to_string(want[i]));
      fail("dataset '" + name + "': shape " + shape_text(got) + ", expected " + w + " (" + meaning + ")");
    }
    return got;
  }

  // Returns the file's format version.
  long check_header() const {
    if (!f.has_attribute("format")) fail("attribute 'format': missing (not a cvnode dataset file)");
    const std::string format = f.string_attribute("format");
    // What the file is, before anything else: a checkpoint given as a dataset is named as such.
    if (format == "cvnode-checkpoint")
      fail("this is a checkpoint of `cvnode fit`, not a dataset (its configuration names the dataset it was "
           "trained on)");
    if (format != kFormatName) fail("attribute 'format': '" + format + "', expected '" + kFormatName + "'");
    if (!f.has_attribute("format_version")) fail("attribute 'format_version': missing");
    const long version = f.int_attribute("format_version");
    if (version > kDatasetFormatVersion)
      fail("attribute 'format_version': " + std::to_string(version) + " is newer than this cvnode reads (" +
           std::to_string(kDatasetFormatVersion) + "); upgrade cvnode");
    if (version < 1) fail("attribute 'format_version': " + std::to_string(version) + " is not a valid version");
    // A name of a newer version in an older file is as unknown as a typo: the file says what it holds.
    const std::string not_part = " (not part of format version " + std::to_string(version) + ")";
    for (const auto& a : f.attribute_names())
      if (!kAttributes.count(a) && !(version >= 2 && kAttributesV2.count(a)))
        fail("attribute '" + a + "': unknown attribute" + not_part);
    for (const auto& l : f.link_names())
      if (!kDatasets.count(l) && !(version >= 2 && kEventDatasets.count(l)))
        fail("dataset '" + l + "': unknown dataset" + not_part);
    for (const char* need : {"channel_names", "channel_units"})
      if (!f.has_attribute(need)) fail(std::string("attribute '") + need + "': missing");
    for (const char* need : {"series_id", "t0", "offsets", "times", "values", "mask"})
      if (!f.has(need)) fail(std::string("dataset '") + need + "': missing");
    return version;
  }

  // Rows [a, b) of a series' part of a ragged array described by an offsets dataset (series + 1
  // entries, 0 first, `rows` last, non-decreasing), for series [first, first + count): the
  // offsets relative to the first series' row, and the first row in the file.
  std::vector<std::size_t> read_offsets(const char* name, long S, long rows, const char* what, std::size_t first,
                                        std::size_t count, hsize_t* file_row) const {
    expect_shape(name, {S + 1}, "series + 1");
    auto off = f.read_int64_rows(name, first, static_cast<long>(count) + 1);
    const auto head = f.read_int64_rows(name, 0, 1), tail = f.read_int64_rows(name, S, 1);
    if (head[0] != 0) fail(std::string("dataset '") + name + "': " + name + "[0] = " + std::to_string(head[0]) +
                           ", expected 0");
    if (tail[0] != rows)
      fail(std::string("dataset '") + name + "': " + name + "[" + std::to_string(S) + "] = " +
           std::to_string(tail[0]) + ", expected the number of " + what + " " + std::to_string(rows));
    for (std::size_t i = 0; i <= count; ++i)
      if (off[i] < 0 || off[i] > rows || (i > 0 && off[i] < off[i - 1]))
        fail(std::string("dataset '") + name + "': " + name + "[" + std::to_string(first + i) + "] = " +
             std::to_string(off[i]) + " is out of order or outside [0, " + std::to_string(rows) + "]");
    std::vector<std::size_t> out(count + 1);
    for (std::size_t i = 0; i <= count; ++i) out[i] = static_cast<std::size_t>(off[i] - off[0]);
    *file_row = static_cast<hsize_t>(off[0]);
    return out;
  }

  // Appends "PATH FIRST COUNT" to $CVNODE_READ_LOG.PID for a values read (tests count reads).
  void log_values_read(std::size_t first, std::size_t count) const {
    const char* prefix = std::getenv("CVNODE_READ_LOG");
    if (!prefix || !*prefix || count == 0) return;
    const std::string path = std::string(prefix) + "." + std::to_string(static_cast<long>(::getpid()));
    if (std::FILE* log = std::fopen(path.c_str(), "a")) {
      std::fprintf(log, "%s %zu %zu\n", f.path().c_str(), first, count);
      std::fclose(log);
    }
  }

  // Series [first, first + count) (count < 0: to the end); with `wanted` (one flag per series of
  // the file), the values of the wanted ones only.
  Dataset read(std::size_t first, long count_in, const std::vector<bool>* wanted = nullptr) const {
    const long version = check_header();
    Dataset d;
    try {
      d = Dataset(f.string_array_attribute("channel_names"), f.string_array_attribute("channel_units"));
    } catch (const DataError& e) {
      const std::string why = e.what();
      if (why.rfind(f.path(), 0) == 0) throw;
      fail("attributes 'channel_names'/'channel_units': " + why.substr(why.find(": ") + 2));
    }
    const long C = d.channels();
    const auto oshape = expect_shape("offsets", {-1}, "series + 1");
    if (oshape[0] < 1) fail("dataset 'offsets': empty, needs series + 1 entries");
    const long S = static_cast<long>(oshape[0]) - 1;
    const long N = static_cast<long>(expect_shape("times", {-1}, "observations")[0]);
    expect_shape("series_id", {S}, "series");
    expect_shape("t0", {S}, "series");
    expect_shape("values", {N, C}, "observations x channels");
    expect_shape("mask", {N, C}, "observations x channels");
    if (first > static_cast<std::size_t>(S) || (count_in >= 0 && first + count_in > static_cast<std::size_t>(S)))
      fail("series " + std::to_string(first) + " to " + std::to_string(first + std::max(count_in, 0L)) +
           " requested, the file has " + std::to_string(S));
    const std::size_t count = count_in < 0 ? S - first : static_cast<std::size_t>(count_in);

    // Optional parts: their shapes against the series count.
    const bool has_z0 = f.has("initial_state"), has_cov = f.has("covariates");
    const bool has_ctrl = f.has("control_offsets") || f.has("control_times") || f.has("control_values");
    long D = 0, K = 0, U = 0, M = 0;
    if (has_z0) D = static_cast<long>(expect_shape("initial_state", {S, -1}, "series x state")[1]);
    if (has_cov) {
      K = static_cast<long>(expect_shape("covariates", {S, -1}, "series x covariates")[1]);
      if (!f.has_attribute("covariate_names")) fail("attribute 'covariate_names': missing (the file has covariates)");
      d.covariate_names_ = f.string_array_attribute("covariate_names");
      if (static_cast<long>(d.covariate_names_.size()) != K)
        fail("attribute 'covariate_names': " + std::to_string(d.covariate_names_.size()) + " names for " +
             std::to_string(K) + " covariates");
    } else if (f.has_attribute("covariate_names")) {
      fail("attribute 'covariate_names': present but there is no 'covariates' dataset");
    }
    if (has_ctrl) {
      for (const char* need : {"control_offsets", "control_times", "control_values"})
        if (!f.has(need)) fail(std::string("dataset '") + need + "': missing (the file has other control datasets)");
      M = static_cast<long>(expect_shape("control_times", {-1}, "control rows")[0]);
      U = static_cast<long>(expect_shape("control_values", {M, -1}, "control rows x controls")[1]);
      if (!f.has_attribute("control_names")) fail("attribute 'control_names': missing (the file has controls)");
      d.control_names_ = f.string_array_attribute("control_names");
      if (static_cast<long>(d.control_names_.size()) != U)
        fail("attribute 'control_names': " + std::to_string(d.control_names_.size()) + " names for " +
             std::to_string(U) + " controls");
      if (f.has_attribute("control_interpolation")) {
        const std::string how = f.string_attribute("control_interpolation");
        if (how != "piecewise_constant" && how != "linear" && !(how == "monotone_cubic" && version >= 2))
          fail("attribute 'control_interpolation': '" + how + "' (expected piecewise_constant or linear" +
               (version >= 2 ? ", monotone_cubic)" : "; monotone_cubic needs format version 2)"));
        d.control_interpolation_ = how;
      }
    } else {
      for (const char* a : {"control_names", "control_interpolation"})
        if (f.has_attribute(a)) fail(std::string("attribute '") + a + "': present but the file has no controls");
    }
    if (f.has_attribute("provenance")) d.provenance_ = f.string_attribute("provenance");
    if (f.has("normalization_mean") != f.has("normalization_std"))
      fail("dataset 'normalization_mean' and 'normalization_std': only one of the two is present");
    if (f.has("normalization_mean")) {
      expect_shape("normalization_mean", {C}, "channels");
      expect_shape("normalization_std", {C}, "channels");
      Normalization n;
      auto m = f.read_double_rows("normalization_mean", 0), s = f.read_double_rows("normalization_std", 0);
      n.mean = Eigen::Map<Vector>(m.data(), C);
      n.std = Eigen::Map<Vector>(s.data(), C);
      try {
        d.set_normalization(n);
      } catch (const DataError& e) {
        fail(std::string("dataset 'normalization_mean'/'normalization_std': ") + e.what());
      }
    }
    if (f.has_attribute("normalized")) {
      const long v = f.int_attribute("normalized");
      if (v != 0 && v != 1) fail("attribute 'normalized': " + std::to_string(v) + " (expected 0 or 1)");
      if (v == 1 && d.normalization_.empty()) fail("attribute 'normalized': 1 but the file has no normalization");
      d.normalized_ = v == 1;
    }

    // Offsets of the requested series; the first and last entries of the whole array bound them.
    hsize_t a = 0;
    d.offsets_ = read_offsets("offsets", S, N, "observations", first, count, &a);
    const long rows = static_cast<long>(d.offsets_.back());

    d.ids_ = f.read_string_rows("series_id", first, static_cast<long>(count));
    d.t0_ = f.read_double_rows("t0", first, static_cast<long>(count));
    d.times_ = f.read_double_rows("times", a, rows);
    if (!wanted) {
      d.values_ = f.read_double_rows("values", a, rows);
      log_values_read(first, count);
    } else {
      if (wanted->size() != static_cast<std::size_t>(S) || first != 0 || count != static_cast<std::size_t>(S))
        throw std::logic_error("Dataset::read_shard: one flag per series of the file is needed");
      d.values_.assign(static_cast<std::size_t>(rows * C), 0.0);
      d.values_read_.assign(count, 0);
      for (std::size_t i = 0; i < count;) {
        if (!(*wanted)[i]) {
          ++i;
          continue;
        }
        std::size_t j = i;
        while (j < count && (*wanted)[j]) d.values_read_[j++] = 1;
        const std::size_t r0 = d.offsets_[i], r1 = d.offsets_[j];
        const auto part = f.read_double_rows("values", a + r0, static_cast<long>(r1 - r0));
        std::copy(part.begin(), part.end(), d.values_.begin() + static_cast<std::ptrdiff_t>(r0 * C));
        log_values_read(i, j - i);
        i = j;
      }
    }
    d.mask_ = f.read_uint8_rows("mask", a, rows);
    d.state_dim_ = static_cast<int>(D);
    d.cov_dim_ = static_cast<int>(K);
    d.ctrl_dim_ = static_cast<int>(U);
    if (has_z0) d.initial_states_ = f.read_double_rows("initial_state", first, static_cast<long>(count));
    if (has_cov) d.covariates_ = f.read_double_rows("covariates", first, static_cast<long>(count));
    d.control_offsets_.assign(count + 1, 0);
    if (has_ctrl) {
      hsize_t ca = 0;
      d.control_offsets_ = read_offsets("control_offsets", S, M, "control rows", first, count, &ca);
      const long crows = static_cast<long>(d.control_offsets_.back());
      d.control_times_ = f.read_double_rows("control_times", ca, crows);
      d.control_values_ = f.read_double_rows("control_values", ca, crows);
    }

    // Events (format version 2): the same ragged layout with their own offsets.
    bool has_events = false;
    for (const auto& name : kEventDatasets) has_events = has_events || f.has(name);
    std::vector<double> ev_t, ev_a, ev_r;
    std::vector<std::int64_t> ev_c;
    std::vector<std::uint8_t> ev_k;
    std::vector<std::size_t> ev_off(count + 1, 0);
    if (has_events) {
      for (const auto& need : kEventDatasets)
        if (!f.has(need)) fail("dataset '" + need + "': missing (the file has other event datasets)");
      const long E = static_cast<long>(expect_shape("event_times", {-1}, "events")[0]);
      for (const char* name : {"event_compartment", "event_amount", "event_rate", "event_kind"})
        expect_shape(name, {E}, "events");
      if (!f.has_attribute("compartment_names")) fail("attribute 'compartment_names': missing (the file has events)");
      try {
        d.set_compartment_names(f.string_array_attribute("compartment_names"));
      } catch (const DataError& e) {
        const std::string why = e.what();
        fail("attribute 'compartment_names': " + why.substr(why.find(": ") + 2));
      }
      hsize_t ea = 0;
      ev_off = read_offsets("event_offsets", S, E, "events", first, count, &ea);
      const long erows = static_cast<long>(ev_off.back());
      ev_t = f.read_double_rows("event_times", ea, erows);
      ev_c = f.read_int64_rows("event_compartment", ea, erows);
      ev_a = f.read_double_rows("event_amount", ea, erows);
      ev_r = f.read_double_rows("event_rate", ea, erows);
      ev_k = f.read_uint8_rows("event_kind", ea, erows);
    } else if (f.has_attribute("compartment_names")) {
      fail("attribute 'compartment_names': present but the file has no events");
    }

    // Per-series rules, with the series named in the message.
    std::unordered_set<std::string>& ids = d.id_set_;
    ids.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      const std::string who = detail::series_label(d.ids_[i], first + i) + ": ";
      if (d.ids_[i].empty()) fail(who + "field 'series_id': empty id");
      if (!ids.insert(d.ids_[i]).second) fail(who + "field 'series_id': duplicate id");
      const std::size_t o = d.offsets_[i], n = d.offsets_[i + 1] - o;
      if (std::string why = detail::check_series_rows(d.t0_[i], d.times_.data() + o, n, d.values_.data() + o * C,
                                                      d.mask_.data() + o * C, static_cast<int>(C));
          !why.empty())
        fail(who + why);
      for (long j = 0; j < D; ++j)
        if (!std::isfinite(d.initial_states_[i * D + j]))
          fail(who + "field 'initial_state': entry " + std::to_string(j) + " = " +
               std::to_string(d.initial_states_[i * D + j]) + " is not finite");
      for (long j = 0; j < K; ++j)
        if (!std::isfinite(d.covariates_[i * K + j]))
          fail(who + "field 'covariates': entry " + std::to_string(j) + " is not finite");
      const std::size_t co = d.control_offsets_[i], cn = d.control_offsets_[i + 1] - co;
      if (std::string why = detail::check_control_rows(d.control_times_.data() + co, cn,
                                                       d.control_values_.data() + co * U, static_cast<int>(U));
          !why.empty())
        fail(who + why);
      const std::size_t eo = ev_off[i], en = ev_off[i + 1] - eo;
      if (std::string why = detail::check_event_rows(d.t0_[i], d.times_[d.offsets_[i + 1] - 1], ev_t.data() + eo,
                                                     ev_c.data() + eo, ev_a.data() + eo, ev_r.data() + eo,
                                                     ev_k.data() + eo, en, d.compartment_names_);
          !why.empty())
        fail(who + why);
    }
    d.event_offsets_ = ev_off;
    d.events_.resize(ev_t.size());
    for (std::size_t k = 0; k < ev_t.size(); ++k)
      d.events_[k] = EventRecord{ev_t[k], static_cast<int>(ev_c[k]), ev_a[k], ev_r[k], static_cast<Evid>(ev_k[k])};
    return d;
  }

  static void write(const Dataset& d, const h5::File& f) {
    const hsize_t S = d.size(), N = d.observations(), C = d.channels();
    f.write_string_attribute("format", kFormatName);
    f.write_int_attribute("format_version", d.format_version());
    f.write_string_array_attribute("channel_names", d.channel_names_);
    f.write_string_array_attribute("channel_units", d.channel_units_);
    if (!d.provenance_.empty()) f.write_string_attribute("provenance", d.provenance_);
    std::vector<std::int64_t> off(d.offsets_.begin(), d.offsets_.end());
    f.write_strings("series_id", d.ids_);
    f.write_doubles("t0", d.t0_.data(), {S});
    f.write_int64("offsets", off.data(), off.size());
    f.write_doubles("times", d.times_.data(), {N});
    f.write_doubles("values", d.values_.data(), {N, C});
    f.write_uint8("mask", d.mask_.data(), {N, C});
    if (d.initial_state_size() > 0)
      f.write_doubles("initial_state", d.initial_states_.data(), {S, static_cast<hsize_t>(d.initial_state_size())});
    if (d.covariate_count() > 0) {
      f.write_string_array_attribute("covariate_names", d.covariate_names());
      f.write_doubles("covariates", d.covariates_.data(), {S, static_cast<hsize_t>(d.covariate_count())});
    }
    if (d.control_count() > 0) {
      f.write_string_array_attribute("control_names", d.control_names());
      f.write_string_attribute("control_interpolation", d.control_interpolation_);
      std::vector<std::int64_t> coff(d.control_offsets_.begin(), d.control_offsets_.end());
      f.write_int64("control_offsets", coff.data(), coff.size());
      f.write_doubles("control_times", d.control_times_.data(), {d.control_times_.size()});
      f.write_doubles("control_values", d.control_values_.data(),
                      {d.control_times_.size(), static_cast<hsize_t>(d.control_count())});
    }
    if (d.has_events()) {
      const detail::EventColumns e(d.events_.data(), d.events_.size());
      const hsize_t E = e.size();
      f.write_string_array_attribute("compartment_names", d.compartment_names_);
      std::vector<std::int64_t> eoff(d.event_offsets_.begin(), d.event_offsets_.end());
      f.write_int64("event_offsets", eoff.data(), eoff.size());
      f.write_doubles("event_times", e.time.data(), {E});
      f.write_int64("event_compartment", e.compartment.data(), E);
      f.write_doubles("event_amount", e.amount.data(), {E});
      f.write_doubles("event_rate", e.rate.data(), {E});
      f.write_uint8("event_kind", e.kind.data(), {E});
    }
    if (!d.normalization_.empty()) {
      f.write_doubles("normalization_mean", d.normalization_.mean.data(), {C});
      f.write_doubles("normalization_std", d.normalization_.std.data(), {C});
      f.write_int_attribute("normalized", d.normalized_ ? 1 : 0);
    }
  }
};

Dataset Dataset::read(const std::string& path, bool verify) {
  if (verify) io::verify_seal(path);
  const h5::File f = h5::File::open_read(path);
  return DatasetIo{f}.read(0, -1);
}

Dataset Dataset::read_range(const std::string& path, std::size_t first, std::size_t count) {
  const h5::File f = h5::File::open_read(path);
  return DatasetIo{f}.read(first, static_cast<long>(count));
}

Dataset Dataset::read_shard(const std::string& path, const std::vector<bool>& wanted) {
  const h5::File f = h5::File::open_read(path);
  const std::vector<bool> none(count_series(path), false);
  return DatasetIo{f}.read(0, -1, wanted.empty() ? &none : &wanted);
}

std::size_t Dataset::count_series(const std::string& path) {
  const h5::File f = h5::File::open_read(path);
  DatasetIo io{f};
  io.check_header();
  const auto s = io.expect_shape("offsets", {-1}, "series + 1");
  if (s[0] < 1) io.fail("dataset 'offsets': empty, needs series + 1 entries");
  return static_cast<std::size_t>(s[0] - 1);
}

void Dataset::write(const std::string& path) const {
  if (channels() == 0) throw DataError(path + ": cannot write a dataset without channels");
  h5::write_sealed_file(path, [&](const h5::File& f) { DatasetIo::write(*this, f); });
}

}  // namespace cvnode
