// Checkpoint files: the layout of docs/dataset-format.md ("Checkpoints"), sealed and atomic.
#include "cvnode/checkpoint.h"

#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "cvnode/errors.h"
#include "data/atomic_file.h"
#include "data/hdf5_raii.h"

namespace cvnode {

namespace {

const char* const kFormatName = "cvnode-checkpoint";
const std::set<std::string> kAttributes = {"format", "format_version", "epoch", "step", "optimizer_vector_names",
                                           "optimizer_scalar_names", "metric_names", "data_fingerprint"};
// Attributes that older versions do not have.
const std::set<std::string> kOptionalAttributes = {"data_fingerprint"};
const std::set<std::string> kDatasets = {"model_spec", "config", "parameters", "optimizer_offsets",
                                         "optimizer_data", "optimizer_scalars", "rng_state",
                                         "normalization_mean", "normalization_std", "metric_offsets",
                                         "metric_data"};
// Optional since format version 2: the statistics of the model's inputs.
const std::set<std::string> kOptionalDatasetsV2 = {"input_mean", "input_std"};

void write_text(const h5::File& f, const std::string& name, const std::string& text) {
  f.write_uint8(name, reinterpret_cast<const std::uint8_t*>(text.data()), {text.size()});
}

std::string read_text(const h5::File& f, const std::string& name) {
  const auto bytes = f.read_uint8_rows(name, 0);
  return std::string(bytes.begin(), bytes.end());
}

// Named vectors as names (attribute) + offsets + concatenated data.
template <class Map, class Size, class Data>
void write_named(const h5::File& f, const std::string& names_attr, const std::string& offsets,
                 const std::string& data, const Map& m, Size size, Data ptr) {
  std::vector<std::string> names;
  std::vector<std::int64_t> off{0};
  std::vector<double> all;
  for (const auto& [name, v] : m) {
    names.push_back(name);
    all.insert(all.end(), ptr(v), ptr(v) + size(v));
    off.push_back(static_cast<std::int64_t>(all.size()));
  }
  f.write_string_array_attribute(names_attr, names);
  f.write_int64(offsets, off.data(), off.size());
  f.write_doubles(data, all.data(), {all.size()});
}

std::vector<std::pair<std::string, std::vector<double>>> read_named(const h5::File& f, const std::string& names_attr,
                                                                    const std::string& offsets, const std::string& data) {
  auto bad = [&](const std::string& what) { return DataError(f.path() + ": " + what); };
  const auto names = f.string_array_attribute(names_attr);
  const auto off = f.read_int64_rows(offsets, 0);
  const auto all = f.read_double_rows(data, 0);
  if (off.size() != names.size() + 1)
    throw bad("dataset '" + offsets + "': " + std::to_string(off.size()) + " entries for " +
              std::to_string(names.size()) + " names (expected names + 1)");
  if (off.front() != 0 || off.back() != static_cast<std::int64_t>(all.size()))
    throw bad("dataset '" + offsets + "': must run from 0 to the length of '" + data + "' (" +
              std::to_string(all.size()) + ")");
  std::vector<std::pair<std::string, std::vector<double>>> out;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (off[i + 1] < off[i]) throw bad("dataset '" + offsets + "': offsets decrease at entry " + std::to_string(i + 1));
    if (!seen.insert(names[i]).second) throw bad("attribute '" + names_attr + "': name '" + names[i] + "' appears twice");
    out.emplace_back(names[i], std::vector<double>(all.begin() + off[i], all.begin() + off[i + 1]));
  }
  return out;
}

bool same_spec(const std::string& a, const std::string& b) {
  if (a == b) return true;
  try {
    return nlohmann::json::parse(a) == nlohmann::json::parse(b);
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

std::string clip(const std::string& s) { return s.size() <= 160 ? s : s.substr(0, 157) + "..."; }

}  // namespace

void Checkpoint::write(const std::string& path) const {
  if (normalization.mean.size() != normalization.std.size())
    throw DataError(path + ": checkpoint normalization has " + std::to_string(normalization.mean.size()) +
                    " means but " + std::to_string(normalization.std.size()) + " standard deviations");
  h5::write_sealed_file(path, [&](const h5::File& f) {
    f.write_string_attribute("format", kFormatName);
    f.write_int_attribute("format_version", !data_fingerprint.empty() ? 3 : input_normalization.empty() ? 1 : 2);
    f.write_int_attribute("epoch", static_cast<long>(epoch));
    f.write_int_attribute("step", static_cast<long>(step));
    if (!data_fingerprint.empty()) f.write_string_attribute("data_fingerprint", data_fingerprint);
    write_text(f, "model_spec", model_spec);
    write_text(f, "config", config);
    f.write_doubles("parameters", parameters.data(), {static_cast<hsize_t>(parameters.size())});
    write_named(f, "optimizer_vector_names", "optimizer_offsets", "optimizer_data", optimizer_vectors,
                [](const Vector& v) { return v.size(); }, [](const Vector& v) { return v.data(); });
    std::vector<std::string> scalar_names;
    std::vector<double> scalars;
    for (const auto& [k, v] : optimizer_scalars) { scalar_names.push_back(k); scalars.push_back(v); }
    f.write_string_array_attribute("optimizer_scalar_names", scalar_names);
    f.write_doubles("optimizer_scalars", scalars.data(), {scalars.size()});
    f.write_uint64("rng_state", rng_state.data(), rng_state.size());
    f.write_doubles("normalization_mean", normalization.mean.data(), {static_cast<hsize_t>(normalization.mean.size())});
    f.write_doubles("normalization_std", normalization.std.data(), {static_cast<hsize_t>(normalization.std.size())});
    if (!input_normalization.empty()) {
      f.write_doubles("input_mean", input_normalization.mean.data(), {static_cast<hsize_t>(input_normalization.mean.size())});
      f.write_doubles("input_std", input_normalization.std.data(), {static_cast<hsize_t>(input_normalization.std.size())});
    }
    write_named(f, "metric_names", "metric_offsets", "metric_data", metrics,
                [](const std::vector<double>& v) { return static_cast<long>(v.size()); },
                [](const std::vector<double>& v) { return v.data(); });
  });
}

Checkpoint Checkpoint::read(const std::string& path, const std::string& expected_model_spec) {
  io::verify_seal(path);
  const h5::File f = h5::File::open_read(path);
  auto bad = [&](const std::string& what) { return DataError(path + ": " + what); };
  // What the file is, before anything else: a dataset given as a checkpoint is named as such.
  if (!f.has_attribute("format")) throw bad("attribute 'format': missing (not a cvnode checkpoint)");
  const std::string format = f.string_attribute("format");
  if (format == "cvnode-dataset")
    throw bad("this is a cvnode dataset, not a checkpoint (give a checkpoint of `cvnode fit`, e.g. RUN/best.h5)");
  if (format != kFormatName) throw bad("attribute 'format': '" + format + "', expected '" + kFormatName + "'");
  for (const auto& a : f.attribute_names())
    if (!kAttributes.count(a)) throw bad("attribute '" + a + "': unknown attribute in a checkpoint");
  for (const auto& l : f.link_names())
    if (!kDatasets.count(l) && !kOptionalDatasetsV2.count(l))
      throw bad("dataset '" + l + "': unknown dataset in a checkpoint");
  if (!f.has_attribute("format_version")) throw bad("attribute 'format_version': missing");
  const long version = f.int_attribute("format_version");
  if (version > kCheckpointFormatVersion)
    throw bad("attribute 'format_version': " + std::to_string(version) + " is newer than this cvnode reads (" +
              std::to_string(kCheckpointFormatVersion) + "); upgrade cvnode");
  if (version < 1) throw bad("attribute 'format_version': " + std::to_string(version) + " is not a valid version");
  for (const auto& a : kAttributes)
    if (!kOptionalAttributes.count(a) && !f.has_attribute(a)) throw bad("attribute '" + a + "': missing");
  for (const auto& d : kDatasets)
    if (!f.has(d)) throw bad("dataset '" + d + "': missing");

  Checkpoint c;
  c.model_spec = read_text(f, "model_spec");
  if (!expected_model_spec.empty() && !same_spec(c.model_spec, expected_model_spec))
    throw bad("dataset 'model_spec': the checkpoint's model specification " + clip(c.model_spec) +
              " differs from the expected " + clip(expected_model_spec));
  c.config = read_text(f, "config");
  if (f.has_attribute("data_fingerprint")) c.data_fingerprint = f.string_attribute("data_fingerprint");
  c.epoch = f.int_attribute("epoch");
  c.step = f.int_attribute("step");
  if (c.epoch < 0 || c.step < 0)
    throw bad("attribute 'epoch'/'step': negative (" + std::to_string(c.epoch) + ", " + std::to_string(c.step) + ")");
  auto p = f.read_double_rows("parameters", 0);
  c.parameters = Eigen::Map<Vector>(p.data(), static_cast<Eigen::Index>(p.size()));
  for (auto& [name, v] : read_named(f, "optimizer_vector_names", "optimizer_offsets", "optimizer_data"))
    c.optimizer_vectors[name] = Eigen::Map<Vector>(v.data(), static_cast<Eigen::Index>(v.size()));
  const auto scalar_names = f.string_array_attribute("optimizer_scalar_names");
  const auto scalars = f.read_double_rows("optimizer_scalars", 0);
  if (scalars.size() != scalar_names.size())
    throw bad("dataset 'optimizer_scalars': " + std::to_string(scalars.size()) + " values for " +
              std::to_string(scalar_names.size()) + " names");
  for (std::size_t i = 0; i < scalars.size(); ++i)
    if (!c.optimizer_scalars.emplace(scalar_names[i], scalars[i]).second)
      throw bad("attribute 'optimizer_scalar_names': name '" + scalar_names[i] + "' appears twice");
  c.rng_state = f.read_uint64_rows("rng_state", 0);
  // Mean and std datasets as a Normalization (equal lengths, std > 0).
  auto statistics = [&](const char* mean_name, const char* std_name) {
    auto m = f.read_double_rows(mean_name, 0), s = f.read_double_rows(std_name, 0);
    if (m.size() != s.size())
      throw bad(std::string("dataset '") + std_name + "': " + std::to_string(s.size()) + " entries for " +
                std::to_string(m.size()) + " means");
    for (double v : s)
      if (!(v > 0) || !std::isfinite(v))
        throw bad(std::string("dataset '") + std_name + "': entry " + std::to_string(v) + " is not a positive finite number");
    Normalization n;
    n.mean = Eigen::Map<Vector>(m.data(), static_cast<Eigen::Index>(m.size()));
    n.std = Eigen::Map<Vector>(s.data(), static_cast<Eigen::Index>(s.size()));
    return n;
  };
  c.normalization = statistics("normalization_mean", "normalization_std");
  if (version < 2 && (f.has("input_mean") || f.has("input_std")))
    throw bad("dataset 'input_mean': not part of checkpoint format version " + std::to_string(version));
  if (f.has("input_mean") != f.has("input_std"))
    throw bad("datasets 'input_mean' and 'input_std': only one of the two is present");
  if (f.has("input_mean")) c.input_normalization = statistics("input_mean", "input_std");
  for (auto& [name, v] : read_named(f, "metric_names", "metric_offsets", "metric_data")) c.metrics[name] = std::move(v);
  return c;
}

}  // namespace cvnode
