// Everything needed to resume or reproduce a training run, in one HDF5 file written atomically:
// a crash at any instant leaves either the previous checkpoint or the new one, never a torn file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cvnode/dataset.h"
#include "cvnode/dynamics.h"

namespace cvnode {

// Version of the checkpoint layout (docs/dataset-format.md, "Checkpoints") this library knows;
// it reads this version and older ones. A checkpoint is written with the lowest version that
// holds it: 2 with input statistics, 3 with the data_fingerprint attribute.
constexpr int kCheckpointFormatVersion = 3;

struct Checkpoint {
  // The model as a JSON or TOML text: what the parameter vector means. Compared on load so that
  // weights are never poured into a different architecture.
  std::string model_spec;
  Vector parameters;
  // Optimizer state: named vectors (e.g. Adam's "m", "v") and named scalars ("lr", "beta1_pow").
  std::map<std::string, Vector> optimizer_vectors;
  std::map<std::string, double> optimizer_scalars;
  std::int64_t epoch = 0, step = 0;
  // Random generator state(s), so a resumed run draws the same minibatches.
  std::vector<std::uint64_t> rng_state;
  // The full resolved configuration (file plus overrides), as text.
  std::string config;
  // Per-channel statistics the model was trained on (empty if none).
  Normalization normalization;
  // Statistics of the model's inputs u = [controls; covariates] it was trained with (empty if
  // none; stored only when not empty, as datasets input_mean and input_std).
  Normalization input_normalization;
  // Metrics history: named columns (e.g. "epoch", "train_loss", "val_loss"); lengths may differ.
  std::map<std::string, std::vector<double>> metrics;
  // The content of the data file the run trained on (size and checksum, io::content_fingerprint),
  // so that a resume notices changed data; empty if unknown (version 1 files).
  std::string data_fingerprint;

  // Temporary file in the same folder, flush, close, seal, fsync, rename, fsync the folder.
  // Throws DataError naming the file; `path` is then untouched.
  void write(const std::string& path) const;

  // Verifies the file's seal, the format and its version, and every field's shape. If
  // `expected_model_spec` is not empty it must equal the stored one (as JSON values when both
  // parse as JSON, so whitespace and key order do not matter; else as text). Throws DataError
  // naming the file and the field.
  static Checkpoint read(const std::string& path, const std::string& expected_model_spec = "");
};

}  // namespace cvnode
