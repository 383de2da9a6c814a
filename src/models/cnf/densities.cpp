#include "cvnode/densities.h"

#include <Eigen/Cholesky>
#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "cvnode/errors.h"
#include "core/random.h"

namespace cvnode {

namespace {

using nlohmann::json;
constexpr double kLog2Pi = 1.8378770664093453;  // log(2 pi)

double log_sum_exp(const double* v, int n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < n; ++i) m = std::max(m, v[i]);
  if (!std::isfinite(m)) return m;
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::exp(v[i] - m);
  return m + std::log(s);
}

double default_noise(const std::string& kind) {
  if (kind == "moons") return 0.2;
  if (kind == "circles") return 0.24;
  if (kind == "eight_gaussians") return 0.5 / 1.414;
  return 0.1;  // checkerboard
}

// A 2-D toy: a clean point drawn by the subclass plus N(0, s^2 I) noise.
class Toy2d : public Density {
 public:
  Toy2d(std::string kind, double s) : kind_(std::move(kind)), s_(s) {}
  const std::string& kind() const override { return kind_; }
  int dim() const override { return 2; }
  Matrix sample(int n, std::uint64_t seed) const override {
    detail::Rng rng(seed);
    Matrix x(n, 2);
    for (int i = 0; i < n; ++i) {
      const Eigen::Vector2d p = clean(rng);
      x(i, 0) = p[0] + s_ * rng.normal();
      x(i, 1) = p[1] + s_ * rng.normal();
    }
    return x;
  }
  std::string to_json() const override { return json{{"kind", kind_}, {"noise", s_}}.dump(); }

 protected:
  virtual Eigen::Vector2d clean(detail::Rng& rng) const = 0;
  std::string kind_;
  double s_;
};

// ---- moons: a mixture over points of two curves, integrated by Gauss-Legendre panels ----
class Moons final : public Toy2d {
 public:
  explicit Moons(double s) : Toy2d("moons", s) {
    // 8-point Gauss-Legendre on 96 panels of [0, pi] per curve: the integrand is a Gaussian
    // bump of width s / 2 = 0.1 rad along the curve, sampled ~25 nodes per width.
    static const double x8[4] = {0.1834346424956498, 0.5255324099163290, 0.7966664774136267, 0.9602898564975363};
    static const double w8[4] = {0.3626837833783620, 0.3137066458778873, 0.2223810344533745, 0.1012285362903763};
    const int panels = 96;
    const double h = M_PI / panels;
    for (int c = 0; c < 2; ++c)
      for (int p = 0; p < panels; ++p)
        for (int i = 0; i < 8; ++i) {
          const double xi = (i < 4 ? -x8[3 - i] : x8[i - 4]);
          const double wi = (i < 4 ? w8[3 - i] : w8[i - 4]);
          const double s = (p + 0.5) * h + 0.5 * h * xi;
          nodes_.push_back(curve(c, s));
          // 1/2 per moon, 1/pi for the uniform parameter, h/2 for the panel's map.
          logw_.push_back(std::log(0.5 * wi * 0.5 * h / M_PI));
        }
  }
  double log_density(ConstVectorRef x) const override {
    const int n = static_cast<int>(nodes_.size());
    std::vector<double> t(n);
    const double k = 0.5 / (s_ * s_);
    for (int i = 0; i < n; ++i) t[i] = logw_[i] - k * (x - nodes_[i]).squaredNorm();
    return log_sum_exp(t.data(), n) - std::log(2 * M_PI * s_ * s_);
  }

 private:
  Eigen::Vector2d clean(detail::Rng& rng) const override {
    const int c = rng.uniform() < 0.5 ? 0 : 1;
    return curve(c, M_PI * rng.uniform());
  }
  // sklearn's make_moons scaled by 2 and shifted by (-1, -0.2), as FFJORD's toy data.
  static Eigen::Vector2d curve(int c, double s) {
    const Eigen::Vector2d p = c == 0 ? Eigen::Vector2d(std::cos(s), std::sin(s))
                                     : Eigen::Vector2d(1 - std::cos(s), 0.5 - std::sin(s));
    return 2 * p + Eigen::Vector2d(-1, -0.2);
  }
  std::vector<Eigen::Vector2d> nodes_;
  std::vector<double> logw_;
};

// log(e^-x I0(x)), x >= 0.
double log_i0e(double x) {
  if (x < 500) return std::log(std::cyl_bessel_i(0.0, x)) - x;
  const double r = 1 / x;  // asymptotic series; the next term is below 2e-12 here
  return -0.5 * std::log(2 * M_PI * x) + std::log(1 + r / 8 + 9 * r * r / 128 + 225 * r * r * r / 3072);
}

// ---- circles: radii 3 and 1.5 ----
class Circles final : public Toy2d {
 public:
  explicit Circles(double s) : Toy2d("circles", s) {}
  // The angle averaged over the circle: (1/2pi) int N(x; r u(phi), s^2 I) dphi
  //   = exp(-(rho - r)^2 / 2s^2) e^-k I0(k) / (2 pi s^2), k = r rho / s^2.
  double log_density(ConstVectorRef x) const override {
    const double rho = x.norm(), s2 = s_ * s_;
    double t[2];
    int i = 0;
    for (double r : {3.0, 1.5}) t[i++] = std::log(0.5) - (rho - r) * (rho - r) / (2 * s2) + log_i0e(r * rho / s2);
    return log_sum_exp(t, 2) - std::log(2 * M_PI * s2);
  }

 private:
  Eigen::Vector2d clean(detail::Rng& rng) const override {
    const double r = rng.uniform() < 0.5 ? 3.0 : 1.5;
    const double a = 2 * M_PI * rng.uniform();
    return {r * std::cos(a), r * std::sin(a)};
  }
};

// ---- a Gaussian mixture in any dimension (eight_gaussians is one in 2-D) ----
class Mixture final : public Density {
 public:
  Mixture(std::string kind, Vector weights, Matrix means, std::vector<Matrix> chol)
      : kind_(std::move(kind)), w_(std::move(weights)), mu_(std::move(means)), L_(std::move(chol)) {
    for (const Matrix& L : L_) logdet_.push_back(L.diagonal().array().log().sum());
  }
  const std::string& kind() const override { return kind_; }
  int dim() const override { return static_cast<int>(mu_.cols()); }
  Matrix sample(int n, std::uint64_t seed) const override {
    detail::Rng rng(seed);
    const int D = dim();
    Matrix x(n, D);
    Vector e(D);
    for (int i = 0; i < n; ++i) {
      double u = rng.uniform();
      int k = 0;
      while (k + 1 < w_.size() && u >= w_[k]) u -= w_[k++];
      for (int d = 0; d < D; ++d) e[d] = rng.normal();
      x.row(i) = (mu_.row(k).transpose() + L_[k] * e).transpose();
    }
    return x;
  }
  double log_density(ConstVectorRef x) const override {
    const int K = static_cast<int>(w_.size()), D = dim();
    std::vector<double> t(K);
    for (int k = 0; k < K; ++k) {
      const Vector r = L_[k].triangularView<Eigen::Lower>().solve(x - mu_.row(k).transpose());
      t[k] = std::log(w_[k]) - 0.5 * r.squaredNorm() - logdet_[k];
    }
    return log_sum_exp(t.data(), K) - 0.5 * D * kLog2Pi;
  }
  std::string to_json() const override {
    json means = json::array(), chol = json::array();
    for (Eigen::Index k = 0; k < mu_.rows(); ++k) {
      std::vector<double> m(mu_.cols());
      for (Eigen::Index d = 0; d < mu_.cols(); ++d) m[d] = mu_(k, d);
      means.push_back(m);
      json rows = json::array();
      for (Eigen::Index i = 0; i < L_[k].rows(); ++i) {
        std::vector<double> r(i + 1);
        for (Eigen::Index j = 0; j <= i; ++j) r[j] = L_[k](i, j);
        rows.push_back(r);
      }
      chol.push_back(rows);
    }
    return json{{"kind", kind_},
                {"weights", std::vector<double>(w_.data(), w_.data() + w_.size())},
                {"means", means},
                {"chol", chol}}
        .dump();
  }

 private:
  std::string kind_;
  Vector w_;
  Matrix mu_;              // K x D
  std::vector<Matrix> L_;  // lower Cholesky factors of the covariances
  std::vector<double> logdet_;
};

std::unique_ptr<Density> eight_gaussians(double s) {
  Matrix mu(8, 2);
  const double r = 4.0 / 1.414, q = r / std::sqrt(2.0);
  mu << r, 0, -r, 0, 0, r, 0, -r, q, q, q, -q, -q, q, -q, -q;
  std::vector<Matrix> L(8, Matrix::Identity(2, 2) * s);
  return std::make_unique<Mixture>("eight_gaussians", Vector::Constant(8, 1.0 / 8), mu, L);
}

std::unique_ptr<Density> random_mixture(int D, int K, double spread, std::uint64_t seed) {
  detail::Rng rng(seed);
  Vector w(K);
  Matrix mu(K, D);
  std::vector<Matrix> L;
  for (int k = 0; k < K; ++k) {
    w[k] = 1 + rng.uniform();
    for (int d = 0; d < D; ++d) mu(k, d) = spread * rng.normal();
    Matrix A(D, D);
    for (int i = 0; i < D * D; ++i) A.data()[i] = rng.normal();
    const Matrix Q = Eigen::HouseholderQR<Matrix>(A).householderQ();
    Vector sd(D);
    for (int d = 0; d < D; ++d) sd[d] = 0.4 + 0.6 * rng.uniform();
    const Matrix S = Q * sd.array().square().matrix().asDiagonal() * Q.transpose();
    L.push_back(Eigen::LLT<Matrix>(0.5 * (S + S.transpose())).matrixL());
  }
  w /= w.sum();
  return std::make_unique<Mixture>("mixture", w, mu, L);
}

// ---- checkerboard: FFJORD's board (cells (i, j), i, j in -2..1, side 2, filled when i + j is
// even), uniform on the filled cells, plus Gaussian noise ----
class Checkerboard final : public Toy2d {
 public:
  explicit Checkerboard(double s) : Toy2d("checkerboard", s) {}
  // p(x) = (1/32) sum over filled cells of P(x + noise in the cell), per dimension a difference
  // of normal tails taken on the side where both are small (no cancellation far out).
  double log_density(ConstVectorRef x) const override {
    double p = 0;
    for (int i = -2; i < 2; ++i)
      for (int j = -2; j < 2; ++j)
        if ((i + j) % 2 == 0) p += mass(x[0], 2.0 * i) * mass(x[1], 2.0 * j);
    return std::log(p / 32);
  }

 private:
  Eigen::Vector2d clean(detail::Rng& rng) const override {
    const int c = std::min(7, static_cast<int>(8 * rng.uniform()));  // one of the 8 filled cells
    const int i = c / 2 - 2, j = (c % 2) * 2 - 2 + ((i + 2) % 2);
    const double u = rng.uniform();
    return {2 * (i + u), 2 * (j + rng.uniform())};
  }
  double mass(double x, double a) const {
    const double b = a + 2, k = 1 / (s_ * std::sqrt(2.0));
    if (x <= a + 1) return 0.5 * (std::erfc((a - x) * k) - std::erfc((b - x) * k));
    return 0.5 * (std::erfc((x - b) * k) - std::erfc((x - a) * k));
  }
};

}  // namespace

std::vector<std::string> density_kinds() { return {"moons", "circles", "eight_gaussians", "checkerboard", "mixture"}; }

std::string DensityOptions::validate() const {
  const auto kinds = density_kinds();
  if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
    return "density '" + kind + "' is not one of moons, circles, eight_gaussians, checkerboard, mixture";
  if (kind != "mixture" && noise == 0)
    return "noise = 0: the " + kind + " density needs Gaussian noise > 0 for a finite log-density (< 0: its default)";
  if (!std::isfinite(noise)) return "noise is not finite";
  if (kind == "mixture") {
    if (dim < 1) return "dim = " + std::to_string(dim) + ": must be >= 1";
    if (components < 1) return "components = " + std::to_string(components) + ": must be >= 1";
    if (!(spread >= 0) || !std::isfinite(spread)) return "spread = " + std::to_string(spread) + ": must be >= 0";
  }
  return {};
}

std::unique_ptr<Density> make_density(const DensityOptions& o) {
  if (std::string why = o.validate(); !why.empty()) throw OptionsError(why);
  const double s = o.noise < 0 ? default_noise(o.kind) : o.noise;
  if (o.kind == "moons") return std::make_unique<Moons>(s);
  if (o.kind == "circles") return std::make_unique<Circles>(s);
  if (o.kind == "eight_gaussians") return eight_gaussians(s);
  if (o.kind == "checkerboard") return std::make_unique<Checkerboard>(s);
  return random_mixture(o.dim, o.components, o.spread, o.seed);
}

std::unique_ptr<Density> density_from_json(const std::string& text, const std::string& where) {
  try {
    const json j = json::parse(text);
    const std::string kind = j.at("kind").get<std::string>();
    if (kind == "moons" || kind == "circles" || kind == "checkerboard") {
      const double s = j.at("noise").get<double>();
      if (!(s > 0)) throw DataError(where + ": density noise " + std::to_string(s) + " must be > 0");
      if (kind == "moons") return std::make_unique<Moons>(s);
      if (kind == "circles") return std::make_unique<Circles>(s);
      return std::make_unique<Checkerboard>(s);
    }
    if (kind == "eight_gaussians" || kind == "mixture") {
      const auto w = j.at("weights").get<std::vector<double>>();
      const auto means = j.at("means").get<std::vector<std::vector<double>>>();
      const auto chol = j.at("chol").get<std::vector<std::vector<std::vector<double>>>>();
      const int K = static_cast<int>(w.size());
      if (K == 0 || means.size() != w.size() || chol.size() != w.size())
        throw DataError(where + ": a mixture needs as many means and Cholesky factors as weights");
      const int D = static_cast<int>(means[0].size());
      Matrix mu(K, D);
      std::vector<Matrix> L;
      for (int k = 0; k < K; ++k) {
        if (static_cast<int>(means[k].size()) != D || static_cast<int>(chol[k].size()) != D)
          throw DataError(where + ": mixture component " + std::to_string(k) + " does not have dimension " +
                          std::to_string(D));
        Matrix Lk = Matrix::Zero(D, D);
        for (int i = 0; i < D; ++i) {
          mu(k, i) = means[k][i];
          if (static_cast<int>(chol[k][i].size()) != i + 1)
            throw DataError(where + ": mixture component " + std::to_string(k) + ": Cholesky row " +
                            std::to_string(i) + " needs " + std::to_string(i + 1) + " entries");
          for (int c = 0; c <= i; ++c) Lk(i, c) = chol[k][i][c];
          if (!(Lk(i, i) > 0))
            throw DataError(where + ": mixture component " + std::to_string(k) + ": Cholesky diagonal must be > 0");
        }
        L.push_back(Lk);
      }
      Vector wv = Eigen::Map<const Vector>(w.data(), K);
      if (!((wv.array() > 0).all()) || std::abs(wv.sum() - 1) > 1e-9)
        throw DataError(where + ": mixture weights must be positive and sum to 1");
      return std::make_unique<Mixture>(kind, wv, mu, L);
    }
    throw DataError(where + ": unknown density kind '" + kind + "'");
  } catch (const json::exception& e) {
    throw DataError(where + ": density description is not valid (" + std::string(e.what()) + ")");
  }
}

EntropyEstimate estimate_entropy(const Density& density, int samples, std::uint64_t seed) {
  const Matrix x = density.sample(samples, seed);
  double m = 0, m2 = 0;
  for (int i = 0; i < samples; ++i) {
    const double l = density.log_density(x.row(i).transpose());
    m += l;
    m2 += l * l;
  }
  m /= samples;
  EntropyEstimate e;
  e.value = -m;
  e.standard_error = std::sqrt(std::max(0.0, m2 / samples - m * m) / samples);
  e.samples = samples;
  return e;
}

}  // namespace cvnode

namespace cvnode {

Dataset density_dataset(const Density& density, int samples, std::uint64_t seed, int entropy_samples) {
  if (samples < 1) throw OptionsError("density samples = " + std::to_string(samples) + " must be >= 1");
  const int D = density.dim();
  std::vector<std::string> names(D), units(D);
  for (int d = 0; d < D; ++d) names[d] = "x" + std::to_string(d + 1);
  Dataset data(names, units);
  const Matrix X = density.sample(samples, seed);
  Series s;
  s.times = Vector::Zero(1);
  for (int i = 0; i < samples; ++i) {
    s.id = "p" + std::to_string(i);
    s.values = X.row(i);
    data.add(s);
  }
  nlohmann::json prov{{"generator", "density"}, {"density", nlohmann::json::parse(density.to_json())}, {"seed", seed}};
  if (entropy_samples > 0) {
    const EntropyEstimate h = estimate_entropy(density, entropy_samples, seed + 1);
    prov["entropy"] = h.value;
    prov["entropy_standard_error"] = h.standard_error;
    prov["entropy_samples"] = h.samples;
  }
  data.set_provenance(prov.dump());
  return data;
}

namespace {
nlohmann::json density_provenance(const Dataset& data) {
  if (data.provenance().empty()) return {};
  const nlohmann::json p = nlohmann::json::parse(data.provenance(), nullptr, false);
  if (p.is_discarded() || !p.is_object() || p.value("generator", "") != "density") return {};
  return p;
}
}  // namespace

std::unique_ptr<Density> dataset_density(const Dataset& data, const std::string& where) {
  const nlohmann::json p = density_provenance(data);
  if (p.is_null()) return nullptr;
  if (!p.contains("density")) throw DataError(where + ": provenance names a density generator but no density");
  auto d = density_from_json(p["density"].dump(), where);
  if (d->dim() != data.channels())
    throw DataError(where + ": the stored density has " + std::to_string(d->dim()) + " dimensions, the data " +
                    std::to_string(data.channels()) + " channels");
  return d;
}

EntropyEstimate dataset_entropy(const Dataset& data) {
  const nlohmann::json p = density_provenance(data);
  EntropyEstimate e;
  e.value = e.standard_error = std::numeric_limits<double>::quiet_NaN();
  if (p.is_null() || !p.contains("entropy")) return e;
  e.value = p["entropy"].get<double>();
  e.standard_error = p.value("entropy_standard_error", std::numeric_limits<double>::quiet_NaN());
  e.samples = p.value("entropy_samples", 0);
  return e;
}

}  // namespace cvnode
