#include "app/bench_problem.h"

#include "cvnode/errors.h"
#include "cvnode/hybrid.h"
#include "cvnode/linear_decay.h"
#include "data/hdf5_raii.h"

namespace cvnode {

BenchProblem BenchProblem::load(const std::string& path) {
  const h5::File f = h5::File::open_read(path);
  auto bad = [&](const std::string& field, const std::string& what) {
    return DataError(path + ": " + field + ": " + what);
  };
  BenchProblem p;
  p.name = f.string_attribute("problem");
  p.about = f.has_attribute("about") ? f.string_attribute("about") : "";
  p.reference = f.has_attribute("reference") ? f.string_attribute("reference") : "";
  for (long w : f.int_array_attribute("layers")) p.spec.layers.push_back(static_cast<int>(w));
  try {
    p.spec.activation = parse_activation(f.string_attribute("activation"));
    p.loss_name = f.string_attribute("loss");
    p.loss = make_loss(p.loss_name);
  } catch (const std::invalid_argument& e) {
    throw bad("attributes", e.what());
  }
  if (p.spec.layers.size() < 2) throw bad("attribute 'layers'", "needs at least two widths");
  const int n = p.spec.layers.front();
  if (f.has("k_diag")) {
    auto k = f.read_doubles("k_diag", 1);
    p.spec.k_diag = Eigen::Map<Vector>(k.data(), static_cast<Eigen::Index>(k.size()));
  }
  if (std::string why = p.spec.validate(); !why.empty()) throw bad("attribute 'layers'", why);

  // Parameters, layer by layer, in the flat layout of Mlp.
  const Mlp mlp(p.spec);
  p.theta.resize(mlp.param_size());
  for (size_t l = 0; l + 1 < p.spec.layers.size(); ++l) {
    const std::string W = "W" + std::to_string(l + 1), b = "b" + std::to_string(l + 1);
    const auto shape = f.shape(W);
    const long out = p.spec.layers[l + 1], in = p.spec.layers[l];
    if (shape.size() != 2 || static_cast<long>(shape[0]) != out || static_cast<long>(shape[1]) != in)
      throw bad("dataset '" + W + "'", "shape does not match layers (expected " + std::to_string(out) +
                                          " x " + std::to_string(in) + ")");
    auto w = f.read_doubles(W, 2);  // row-major, as stored
    std::copy(w.begin(), w.end(), p.theta.data() + mlp.weight_offset(static_cast<int>(l)));
    auto bv = f.read_doubles(b, 1);
    if (static_cast<long>(bv.size()) != out) throw bad("dataset '" + b + "'", "length does not match layers");
    std::copy(bv.begin(), bv.end(), p.theta.data() + mlp.bias_offset(static_cast<int>(l)));
  }

  const auto zshape = f.shape("z0");
  if (zshape.size() != 2 || static_cast<int>(zshape[1]) != n)
    throw bad("dataset 'z0'", "expected shape (B, " + std::to_string(n) + ")");
  const auto z0 = f.read_doubles("z0", 2);
  const auto t = f.read_doubles("t", 1);
  const auto target = f.read_doubles("target", 3);
  const auto tshape = f.shape("target");
  const size_t B = zshape[0], T = t.size();
  if (T == 0) throw bad("dataset 't'", "is empty");
  if (tshape[0] != T || tshape[1] != B || static_cast<int>(tshape[2]) != n)
    throw bad("dataset 'target'", "expected shape (T, B, n) = (" + std::to_string(T) + ", " +
                                      std::to_string(B) + ", " + std::to_string(n) + ")");
  for (size_t b = 0; b < B; ++b) {
    Trajectory tr;
    tr.t0 = t[0];
    tr.z0 = Eigen::Map<const Vector>(z0.data() + b * n, n);
    tr.times = Eigen::Map<const Vector>(t.data(), static_cast<Eigen::Index>(T));
    tr.values.resize(static_cast<Eigen::Index>(T), n);
    for (size_t k = 0; k < T; ++k)
      for (int i = 0; i < n; ++i) tr.values(k, i) = target[(k * B + b) * n + i];
    if (std::string why = tr.validate(n); !why.empty())
      throw bad("trajectory " + std::to_string(b), why);
    p.trajectories.push_back(std::move(tr));
  }
  p.ref_loss = f.read_scalar("ref_loss");
  auto g = f.read_doubles("ref_grad", 1);
  if (static_cast<int>(g.size()) != mlp.param_size())
    throw bad("dataset 'ref_grad'", "has " + std::to_string(g.size()) + " entries, the network has " +
                                        std::to_string(mlp.param_size()) + " parameters");
  p.ref_grad = Eigen::Map<Vector>(g.data(), static_cast<Eigen::Index>(g.size()));
  return p;
}

std::unique_ptr<Dynamics> BenchProblem::dynamics(bool hybrid) const {
  if (!hybrid) return std::make_unique<Mlp>(spec);
  if (spec.k_diag.size() == 0)
    throw OptionsError("--hybrid: problem " + name + " has no k_diag (only a problem with a linear decay term, B3)");
  MlpSpec net = spec;
  net.k_diag.resize(0);
  return std::make_unique<Hybrid>(std::make_shared<LinearDecay>(spec.k_diag), std::make_shared<Mlp>(net));
}

std::shared_ptr<const Mlp> BenchProblem::network() const { return std::make_shared<Mlp>(spec); }

}  // namespace cvnode
