// Time-series datasets: many series, each measured at its own irregular times with missing
// entries, stored in HDF5 (docs/dataset-format.md) and turned into Trajectory objects for the
// solver. Everything is deterministic for a given seed, so a run can be repeated exactly.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "cvnode/dynamics.h"
#include "cvnode/observations.h"

namespace cvnode {

// Version of docs/dataset-format.md this library knows; it reads this version and older ones.
// A file is written with the lowest version that holds its content (1 without events), so that
// files without events stay readable by older cvnode versions.
constexpr int kDatasetFormatVersion = 2;

// What an event record does, with its pharmacometric (NONMEM) EVID code as the value. Codes 0
// (observation) and 2 (other) are rows of the measurement table, not events.
enum class Evid : std::uint8_t {
  Dose = 1,       // `amount` into `compartment`: at once (rate 0) or infused at `rate`
  Reset = 3,      // every compartment to zero (a washout)
  ResetDose = 4,  // a reset, then the dose
};
// "dose", "reset", "reset_dose".
const char* evid_name(Evid k);
// Whether an EVID code is one of the event kinds above (1, 3, 4).
bool is_evid(long evid);

// One event of a series as the data record it (a dosing record, in the data's units and with the
// rate as given, so that files and CSV round trips are exact); Dataset::trajectory turns records
// into the solver's Events (observations.h). Records of a series are ordered by time; records at
// the same time apply in their stored order. An observation at an event's time is taken before
// the event (a trough sample taken just before the dose).
struct EventRecord {
  double time = 0;
  int compartment = 0;  // index into Dataset::compartment_names()
  double amount = 0;    // >= 0 (0 for a reset)
  double rate = 0;      // 0: bolus; > 0: infusion at this rate, lasting amount / rate
  Evid kind = Evid::Dose;
  double duration() const { return rate > 0 ? amount / rate : 0.0; }
  bool operator==(const EventRecord& o) const {
    return time == o.time && compartment == o.compartment && amount == o.amount && rate == o.rate &&
           kind == o.kind;
  }
};

// One series, as a user builds or inspects it. Rows of `values` and `mask` follow `times`.
struct Series {
  std::string id;       // unique within a dataset (a subject, an experiment, a sensor)
  double t0 = 0;        // initial time of the model; <= times[0]
  Vector times;         // strictly increasing, finite, at least one
  Matrix values;        // times x channels; masked entries are ignored (stored as NaN)
  Matrix mask;          // same shape, 1 = observed, 0 = missing; empty means all observed
  Vector initial_state; // known initial state z(t0), or empty (only if no series has one)
  Vector covariates;    // static per-series covariates, or empty (only if no series has any)
  // Control inputs u(t): rows of control_values follow control_times. Empty if none.
  Vector control_times;
  Matrix control_values;
  // Doses and other discrete events, ordered by time, each within [t0, last observation time].
  std::vector<EventRecord> events;
};

// Per-channel affine normalisation y' = (y - mean) / std. Computed on the training series only,
// so that validation and test data never leak into the model's inputs.
struct Normalization {
  Vector mean, std;
  bool empty() const { return mean.size() == 0; }
};

// How a dataset's event records become the solver's events (Dataset::trajectory).
struct TrajectoryOptions {
  // The state component each compartment's events enter, one per compartment name (empty:
  // compartment k is state component k).
  std::vector<int> compartment_state;
  // Per compartment: the factor from a record's amount (and rate) to its state component's units,
  // e.g. 1/V to dose an amount into a concentration (empty: ones). A dose into an observed channel
  // of normalised data is divided by the channel's std on top (its normalisation must have mean
  // 0: a jump has no offset).
  Vector dose_scale;
};

// Indices of series in each part of a split.
struct Split {
  std::vector<std::size_t> train, validation, test;
};

class Dataset {
 public:
  // Names and units label channels; they also fix the channel count.
  Dataset() = default;
  Dataset(std::vector<std::string> channel_names, std::vector<std::string> channel_units);

  // --- building -------------------------------------------------------------------------------
  // Appends a series; throws DataError naming the series and the field if it is inconsistent
  // (shapes, non-finite or non-increasing times, unmasked NaN/Inf, duplicate id ...).
  void add(const Series& s);
  // Names of the covariates and controls (default "covariate_0", "control_0" ... at write time).
  void set_covariate_names(std::vector<std::string> names) { covariate_names_ = std::move(names); }
  void set_control_names(std::vector<std::string> names) { control_names_ = std::move(names); }
  // The compartments events address (state components of the model that receive doses, e.g.
  // "depot", "central"); needed before a series with events is added.
  void set_compartment_names(std::vector<std::string> names);
  // "piecewise_constant" (u(t) = value at the last control time <= t), "linear" or
  // "monotone_cubic" (Fritsch-Carlson: smooth, no overshoot; format version 2).
  void set_control_interpolation(std::string how);
  void set_provenance(std::string text) { provenance_ = std::move(text); }  // free form (JSON)
  void set_normalization(const Normalization& n);  // stored with the data; does not apply it

  // --- files ------------------------------------------------------------------------------------
  // Reads the whole file. `verify` checks the file's seal (a whole-file checksum) first.
  // Throws DataError naming the file, the series and the field for anything invalid.
  static Dataset read(const std::string& path, bool verify = true);
  // Reads series [first, first + count) only: their rows of the concatenated arrays are read as
  // hyperslabs, the rest of the file is never touched (one MPI rank's shard). HDF5's own
  // per-chunk and per-metadata checksums still guard what is read.
  static Dataset read_range(const std::string& path, std::size_t first, std::size_t count);
  // Number of series in a file, reading only the offsets' shape.
  static std::size_t count_series(const std::string& path);
  // One MPI rank's shard: everything small of every series (ids, t0, times, masks: 1 byte per
  // entry, initial states, covariates, controls, events), and the values (8 bytes per entry, the
  // bulk) only of the series with wanted[i] (hyperslab reads, one per run of consecutive wanted
  // series; wanted empty: none). Other series hold zeros as values and has_values(i) = false.
  // No whole-file seal check (that would read the whole file); HDF5's checksums guard the reads.
  // With CVNODE_READ_LOG=PREFIX in the environment, every values read appends "PATH FIRST COUNT"
  // to PREFIX.PID (also for read() and read_range(); tests count what each rank read).
  static Dataset read_shard(const std::string& path, const std::vector<bool>& wanted);
  // Writes atomically (temporary file, seal, fsync, rename): `path` is either its previous
  // content or the complete new one.
  void write(const std::string& path) const;

  // --- access ---------------------------------------------------------------------------------
  std::size_t size() const { return ids_.size(); }
  int channels() const { return static_cast<int>(channel_names_.size()); }
  std::size_t observations() const { return times_.size(); }  // rows over all series
  Series series(std::size_t i) const;
  const std::string& id(std::size_t i) const { return ids_.at(i); }
  std::size_t series_length(std::size_t i) const { return offsets_.at(i + 1) - offsets_.at(i); }
  const std::vector<std::string>& channel_names() const { return channel_names_; }
  const std::vector<std::string>& channel_units() const { return channel_units_; }
  std::vector<std::string> covariate_names() const;
  std::vector<std::string> control_names() const;
  const std::string& control_interpolation() const { return control_interpolation_; }
  const std::string& provenance() const { return provenance_; }
  const Normalization& normalization() const { return normalization_; }
  int initial_state_size() const { return state_dim_ > 0 ? state_dim_ : 0; }  // 0: none
  int covariate_count() const { return cov_dim_ > 0 ? cov_dim_ : 0; }
  int control_count() const { return ctrl_dim_ > 0 ? ctrl_dim_ : 0; }
  const std::vector<std::string>& compartment_names() const { return compartment_names_; }
  std::size_t event_count() const { return events_.size(); }  // over all series
  bool has_events() const { return !events_.empty(); }
  // The format version write() uses: 1 unless the data need a newer one (events or monotone
  // cubic controls: 2).
  int format_version() const {
    return has_events() || (control_count() > 0 && control_interpolation_ == "monotone_cubic") ? 2 : 1;
  }
  // Whether series i's values were read (false only for the other ranks' series of read_shard).
  bool has_values(std::size_t i) const { return values_read_.empty() || values_read_.at(i) != 0; }
  bool all_values() const;
  // Marks series i's values as not held (zeros): a shard built by copying series one by one.
  void drop_values(std::size_t i);
  // Whether values currently hold normalised numbers (normalize() was applied).
  bool normalized() const { return normalized_; }
  // Fraction of missing entries of each channel over all series.
  Vector missing_fraction() const;

  // --- splitting and batching -----------------------------------------------------------------
  // Shuffles the series with `seed` and cuts train / validation / test by the given fractions
  // (test gets the rest). Same seed and size, same split, on every platform.
  Split split(double train_fraction, double validation_fraction, std::uint64_t seed) const;
  // A new dataset with the given series in the given order; metadata is copied.
  Dataset subset(const std::vector<std::size_t>& indices) const;
  // Minibatches of series indices for one epoch: `indices` shuffled with (seed, epoch), cut into
  // batches of `batch_size` (the last one may be smaller).
  static std::vector<std::vector<std::size_t>> minibatches(const std::vector<std::size_t>& indices,
                                                           std::size_t batch_size, std::uint64_t seed,
                                                           std::uint64_t epoch);

  // --- normalisation --------------------------------------------------------------------------
  // Mean and standard deviation of each channel over the observed entries of the given series
  // (a channel with zero spread gets std 1). Throws DataError if a channel has no observation.
  // A channel with scale_only[c] = true gets mean 0 and its root mean square as the "std": zero
  // and the sign keep their meaning (doses add to it, sign constraints hold in it).
  // (All series must hold their values: a shard's statistics are merged by the fit,
  // app/fit_data.h.)
  Normalization compute_normalization(const std::vector<std::size_t>& series,
                                      const std::vector<bool>& scale_only = {}) const;
  // Apply / undo on values and on the first `channels()` components of the initial states.
  // The statistics are recorded as this dataset's normalization. Throws DataError if the sizes
  // do not match or the values are already normalised.
  void normalize(const Normalization& n);
  void denormalize();  // no-op when not normalised

  // --- to the solver --------------------------------------------------------------------------
  // The series as the solver's Trajectory for a state of `state_size` >= channels(): z0 is the
  // stored initial state if there is one, else the first observation row (missing entries 0)
  // at t0, padded with zeros; values and mask are the channels. Events: a dose record becomes a
  // Bolus (rate 0) or an Infusion (duration amount / rate) into its compartment's state
  // component, a reset a Reset, a reset with a dose both; controls and covariates are copied.
  // Throws DataError naming the series for a compartment mapped outside the state.
  Trajectory trajectory(std::size_t i, int state_size, const TrajectoryOptions& options = {}) const;
  std::vector<Trajectory> trajectories(const std::vector<std::size_t>& indices, int state_size,
                                       const TrajectoryOptions& options = {}) const;

 private:
  friend struct DatasetIo;
  std::vector<std::string> channel_names_, channel_units_, covariate_names_, control_names_, compartment_names_;
  std::string control_interpolation_ = "piecewise_constant";
  std::string provenance_;
  Normalization normalization_;
  bool normalized_ = false;
  // Widths fixed by the first series added; -1 while there is none.
  int state_dim_ = -1, cov_dim_ = -1, ctrl_dim_ = -1;
  std::vector<std::string> ids_;
  std::unordered_set<std::string> id_set_;  // for the uniqueness check of add()
  std::vector<double> t0_;
  std::vector<std::size_t> offsets_{0};   // series i has rows [offsets_[i], offsets_[i+1])
  std::vector<double> times_;
  std::vector<double> values_;            // rows x channels, row-major; NaN where missing
  std::vector<std::uint8_t> values_read_;  // per series, 0: values not read (a shard); empty: all
  std::vector<std::uint8_t> mask_;        // rows x channels, row-major
  std::vector<double> initial_states_;    // series x state_dim_
  std::vector<double> covariates_;        // series x covariate_count()
  std::vector<std::size_t> control_offsets_{0};
  std::vector<double> control_times_;
  std::vector<double> control_values_;    // control rows x control_count()
  std::vector<std::size_t> event_offsets_{0};  // series i has events [event_offsets_[i], ..[i+1])
  std::vector<EventRecord> events_;
};

}  // namespace cvnode
