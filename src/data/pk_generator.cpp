// Population PK data from the closed-form oral one-compartment model (include/cvnode/pk.h).
#include "cvnode/pk.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include "cvnode/errors.h"
#include "core/random.h"

namespace cvnode {

double bateman_concentration(double t, const std::vector<EventRecord>& doses, double ka, double ke, double V,
                             double bioavailability) {
  double c = 0;
  for (const EventRecord& d : doses) {
    if (d.kind != Evid::Dose || d.time > t) continue;
    const double tau = t - d.time, amount = bioavailability * d.amount;
    // ka close to ke: the difference quotient loses digits; use its limit (and the first term
    // of its expansion, exact to O((ka - ke)^2)).
    const double delta = ka - ke;
    if (std::abs(delta) < 1e-6 * std::max(ka, ke)) {
      c += amount * ka / V * tau * std::exp(-ke * tau) * (1 - 0.5 * delta * tau);
    } else {
      c += amount * ka / (V * delta) * (std::exp(-ke * tau) - std::exp(-ka * tau));
    }
  }
  return c;
}

double bateman_depot(double t, const std::vector<EventRecord>& doses, double ka, double bioavailability) {
  double a = 0;
  for (const EventRecord& d : doses)
    if (d.kind == Evid::Dose && d.time <= t) a += bioavailability * d.amount * std::exp(-ka * (t - d.time));
  return a;
}

std::string PkOptions::validate() const {
  std::ostringstream o;
  o.precision(17);
  auto positive = [&](const char* name, double v) {
    if (!(v > 0) || !std::isfinite(v)) o << name << " = " << v << " must be finite and > 0";
    return o.tellp() == 0;
  };
  auto non_negative = [&](const char* name, double v) {
    if (!(v >= 0) || !std::isfinite(v)) o << name << " = " << v << " must be finite and >= 0";
    return o.tellp() == 0;
  };
  if (subjects < 1) o << "subjects = " << subjects << " must be at least 1";
  else if (observations < 1) o << "observations = " << observations << " must be at least 1";
  else if (doses < 1) o << "doses = " << doses << " must be at least 1";
  else if (observations > 500 * doses)
    o << "observations = " << observations << " must be at most 500 per dose interval (doses = " << doses << ")";
  else if (positive("interval", interval) && positive("t_end", t_end) && positive("dose", dose) &&
           positive("ka", ka) && positive("ke", ke) && positive("V", V) && non_negative("omega_ka", omega_ka) &&
           non_negative("omega_ke", omega_ke) && non_negative("omega_V", omega_V) &&
           positive("weight_median", weight_median) && non_negative("weight_cv", weight_cv) &&
           non_negative("noise", noise)) {
    if ((doses - 1) * interval >= t_end)
      o << "t_end = " << t_end << " must lie after the last dose at " << (doses - 1) * interval
        << " (doses = " << doses << ", interval = " << interval << ")";
    else if (std::min(interval, t_end - (doses - 1) * interval) * 1000 < 2.0 * ((observations + doses - 1) / doses))
      o << "observations = " << observations << " do not fit on the 1/1000 time-unit clock of the dose intervals "
        << "(at most half of its ticks per interval)";
    else if (noise >= 0.5)
      o << "noise = " << noise << " must be < 0.5 (a proportional error that large makes negative concentrations)";
  }
  return o.str();
}

PkTypical pk_typical(const PkOptions& o, double weight) {
  const double w = weight / 70.0;
  // V ~ WT, CL = ke V ~ WT^0.75: ke ~ WT^-0.25.
  return {o.ka, o.ke * std::pow(w, -0.25), o.V * w};
}

namespace {

std::uint64_t subject_seed(std::uint64_t seed, std::size_t i, std::uint64_t purpose) {
  detail::Rng r(seed ^ (0x9E3779B97F4A7C15ULL * (i + 1)) ^ (purpose << 56) ^ 0x5EEDF00DULL);
  return r.next();
}

}  // namespace

Dataset generate_pk(const PkOptions& o, std::vector<PkSubject>* truth) {
  if (std::string why = o.validate(); !why.empty()) throw OptionsError("generate pk: " + why);
  Dataset d({"conc"}, {"mg/L"});
  d.set_covariate_names({"WT"});
  d.set_compartment_names({"depot", "central"});
  std::vector<PkSubject> subjects;
  nlohmann::json subj = nlohmann::json::array();
  for (int i = 0; i < o.subjects; ++i) {
    // Parameters and sampling from their own streams: subject i is the same whatever the count.
    detail::Rng rp(subject_seed(o.seed, i, 1)), rt(subject_seed(o.seed, i, 2)), rn(subject_seed(o.seed, i, 3));
    PkSubject p;
    p.id = "pk_" + std::to_string(i);
    // Log-normal weight with the given median and coefficient of variation, within 40..150 kg.
    const double sw = std::sqrt(std::log(1 + o.weight_cv * o.weight_cv));
    // Recorded to 0.1 kg, as a scale gives it.
    p.weight = std::round(10 * std::clamp(o.weight_median * std::exp(sw * rp.normal()), 40.0, 150.0)) / 10;
    const PkTypical typ = pk_typical(o, p.weight);
    p.ka = typ.ka * std::exp(o.omega_ka * rp.normal());
    p.ke = typ.ke * std::exp(o.omega_ke * rp.normal());
    p.V = typ.V * std::exp(o.omega_V * rp.normal());

    Series s;
    s.id = p.id;
    s.t0 = 0;
    const double amount = o.dose * (i % 3 == 0 ? 0.5 : i % 3 == 1 ? 1.0 : 2.0);
    for (int j = 0; j < o.doses; ++j) s.events.push_back(EventRecord{j * o.interval, 0, amount, 0, Evid::Dose});
    // Observations spread over the dose intervals (the last one runs to t_end), denser early in
    // each (where absorption shapes the curve): start + length * u^2, rounded to 1/1000 time
    // unit (the clock of the records) without repeats.
    std::vector<double> times;
    for (int j = 0; j < o.doses; ++j) {
      const double a = j * o.interval, b = j + 1 < o.doses ? (j + 1) * o.interval : o.t_end;
      const int n = o.observations / o.doses + (j < o.observations % o.doses ? 1 : 0);
      std::vector<double> mine;
      while (static_cast<int>(mine.size()) < n) {  // n <= 500 per interval (validate): ends quickly
        const double u = rt.uniform();
        const long long ticks = std::llround(a * 1000) + std::max(1LL, std::llround(u * u * (b - a) * 1000));
        const double t = static_cast<double>(ticks) / 1000.0;
        if (std::find(mine.begin(), mine.end(), t) == mine.end()) mine.push_back(t);
      }
      times.insert(times.end(), mine.begin(), mine.end());
    }
    std::sort(times.begin(), times.end());
    times.erase(std::unique(times.begin(), times.end()), times.end());
    const auto T = static_cast<Eigen::Index>(times.size());
    s.times = Eigen::Map<const Vector>(times.data(), T);
    s.values.resize(T, 1);
    s.mask = Matrix::Ones(T, 1);
    for (Eigen::Index k = 0; k < T; ++k) {
      const double c = bateman_concentration(times[k], s.events, p.ka, p.ke, p.V);
      s.values(k, 0) = c * (1 + o.noise * rn.normal());
    }
    // Doses after the last sample cannot be seen (the format refuses them).
    while (!s.events.empty() && s.events.back().time > times.back()) s.events.pop_back();
    s.covariates = Vector::Constant(1, p.weight);
    d.add(s);
    subj.push_back({{"id", p.id}, {"WT", p.weight}, {"ka", p.ka}, {"ke", p.ke}, {"V", p.V}});
    subjects.push_back(p);
  }
  nlohmann::json j;
  j["generator"] = "cvnode generate pk";
  j["model"] = "oral one-compartment, first-order absorption (Bateman), F = 1";
  j["options"] = {{"subjects", o.subjects}, {"observations", o.observations}, {"doses", o.doses},
                  {"interval", o.interval}, {"t_end", o.t_end},         {"dose", o.dose},
                  {"ka", o.ka},             {"ke", o.ke},               {"V", o.V},
                  {"omega_ka", o.omega_ka}, {"omega_ke", o.omega_ke},   {"omega_V", o.omega_V},
                  {"weight_median", o.weight_median}, {"weight_cv", o.weight_cv}, {"noise", o.noise},
                  {"seed", o.seed}};
  j["covariate_model"] = "V = V_pop (WT/70) e^eta_V, ke = ke_pop (WT/70)^-0.25 e^eta_ke (CL ~ WT^0.75), ka = ka_pop e^eta_ka";
  j["subjects"] = subj;
  d.set_provenance(j.dump());
  if (truth) *truth = subjects;
  return d;
}

namespace {

nlohmann::json pk_provenance(const Dataset& data) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data.provenance());
  } catch (const std::exception&) {
    throw DataError("the dataset's provenance is not JSON: not made by `cvnode data generate pk`");
  }
  if (j.value("generator", std::string()) != "cvnode generate pk")
    throw DataError("the dataset was not made by `cvnode data generate pk` (no truth recorded)");
  return j;
}

}  // namespace

std::vector<PkSubject> pk_truth(const Dataset& data) {
  const nlohmann::json j = pk_provenance(data);
  std::vector<PkSubject> out;
  for (const auto& s : j.at("subjects"))
    out.push_back({s.at("id").get<std::string>(), s.at("WT").get<double>(), s.at("ka").get<double>(),
                   s.at("ke").get<double>(), s.at("V").get<double>()});
  return out;
}

PkOptions pk_options(const Dataset& data) {
  const nlohmann::json o = pk_provenance(data).at("options");
  PkOptions p;
  p.subjects = o.at("subjects").get<int>();
  p.observations = o.at("observations").get<int>();
  p.doses = o.at("doses").get<int>();
  p.interval = o.at("interval").get<double>();
  p.t_end = o.at("t_end").get<double>();
  p.dose = o.at("dose").get<double>();
  p.ka = o.at("ka").get<double>();
  p.ke = o.at("ke").get<double>();
  p.V = o.at("V").get<double>();
  p.omega_ka = o.at("omega_ka").get<double>();
  p.omega_ke = o.at("omega_ke").get<double>();
  p.omega_V = o.at("omega_V").get<double>();
  p.weight_median = o.at("weight_median").get<double>();
  p.weight_cv = o.at("weight_cv").get<double>();
  p.noise = o.at("noise").get<double>();
  p.seed = o.at("seed").get<std::uint64_t>();
  return p;
}

namespace {

// The empirical-Bayes fit of the true structural model to one subject: eta = the mode of
// sum r^2 / (2 sigma2) + eta^T Omega^-1 eta / 2 with the rates typical .* exp(eta), by
// Levenberg-Marquardt with a central-difference Jacobian (the closed form is cheap and smooth);
// returns the subject's squared error at the mode.
double eb_squared_error(const Series& s, const PkTypical& typical, const Eigen::Vector3d& omega, double sigma2) {
  std::vector<Eigen::Index> rows;
  for (Eigen::Index k = 0; k < s.times.size(); ++k)
    if (!s.mask.size() || s.mask(k, 0) != 0) rows.push_back(k);
  const Eigen::Index n = static_cast<Eigen::Index>(rows.size());
  auto resid = [&](const Eigen::Vector3d& eta) {
    Eigen::VectorXd r(n);
    for (Eigen::Index i = 0; i < n; ++i) {
      const Eigen::Index k = rows[static_cast<std::size_t>(i)];
      r[i] = bateman_concentration(s.times[k], s.events, typical.ka * std::exp(eta[0]), typical.ke * std::exp(eta[1]),
                                   typical.V * std::exp(eta[2])) - s.values(k, 0);
    }
    return r;
  };
  const Eigen::Vector3d winv = omega.cwiseInverse();
  auto objective = [&](const Eigen::Vector3d& eta, const Eigen::VectorXd& r) {
    return r.squaredNorm() / (2 * sigma2) + 0.5 * eta.dot(winv.cwiseProduct(eta));
  };
  Eigen::Vector3d eta = Eigen::Vector3d::Zero();
  Eigen::VectorXd r = resid(eta);
  double f = objective(eta, r), lambda = 1e-3;
  for (int it = 0; it < 100 && n > 0; ++it) {
    Eigen::MatrixXd J(n, 3);
    for (int j = 0; j < 3; ++j) {
      Eigen::Vector3d ep = eta, em = eta;
      ep[j] += 1e-6;
      em[j] -= 1e-6;
      J.col(j) = (resid(ep) - resid(em)) / 2e-6;
    }
    const Eigen::Matrix3d H = J.transpose() * J / sigma2 + Eigen::Matrix3d(winv.asDiagonal());
    const Eigen::Vector3d g = J.transpose() * r / sigma2 + winv.cwiseProduct(eta);
    bool moved = false;
    double step = 0;
    for (int tries = 0; tries < 20 && !moved; ++tries) {
      Eigen::Matrix3d A = H;
      A.diagonal() *= 1 + lambda;
      const Eigen::Vector3d d = -A.ldlt().solve(g);
      const Eigen::Vector3d trial = eta + d;
      const Eigen::VectorXd rt = resid(trial);
      if (rt.allFinite() && objective(trial, rt) < f) {
        eta = trial, r = rt, f = objective(trial, rt), step = d.lpNorm<Eigen::Infinity>();
        lambda = std::max(lambda / 10, 1e-12);
        moved = true;
      } else {
        lambda *= 10;
      }
    }
    if (!moved || step < 1e-10) break;
  }
  return r.squaredNorm();
}

}  // namespace

PkTruthErrors pk_truth_errors(const Dataset& data, const std::vector<std::string>& ids) {
  const PkOptions o = pk_options(data);
  std::map<std::string, PkSubject> truth;
  for (const PkSubject& p : pk_truth(data)) truth[p.id] = p;
  std::map<std::string, std::size_t> where;
  for (std::size_t i = 0; i < data.size(); ++i) where[data.id(i)] = i;
  double se[3] = {0, 0, 0};
  PkTruthErrors e;
  std::vector<std::pair<Series, PkSubject>> subjects;
  for (const std::string& id : ids) {
    const auto t = truth.find(id);
    const auto w = where.find(id);
    if (t == truth.end() || w == where.end())
      throw DataError("series '" + id + "' is not a subject of the generated PK data");
    const Series s = data.series(w->second);
    const PkSubject& p = t->second;
    subjects.emplace_back(s, p);
    const PkTypical at_weight = pk_typical(o, p.weight), at_70 = pk_typical(o, 70.0);
    for (Eigen::Index k = 0; k < s.times.size(); ++k) {
      if (s.mask.size() && s.mask(k, 0) == 0) continue;
      const double y = s.values(k, 0), t_k = s.times[k];
      const double r[3] = {bateman_concentration(t_k, s.events, p.ka, p.ke, p.V) - y,
                           bateman_concentration(t_k, s.events, at_weight.ka, at_weight.ke, at_weight.V) - y,
                           bateman_concentration(t_k, s.events, at_70.ka, at_70.ke, at_70.V) - y};
      for (int j = 0; j < 3; ++j) se[j] += r[j] * r[j];
      ++e.entries;
    }
  }
  const double n = static_cast<double>(std::max(1L, e.entries));
  e.own = std::sqrt(se[0] / n);
  e.typical_at_weight = std::sqrt(se[1] / n);
  e.typical_70kg = std::sqrt(se[2] / n);
  // Empirical Bayes with the true population (see pk.h). Without the weight, log V and log ke
  // also vary by 1 and -0.25 times log(WT / 70), whose variance is log(1 + cv^2).
  const double sigma2 = std::max(se[0] / n, 1e-300);
  const double wv = std::log(1 + o.weight_cv * o.weight_cv);
  const Eigen::Vector3d omega(o.omega_ka * o.omega_ka, o.omega_ke * o.omega_ke, o.omega_V * o.omega_V);
  const Eigen::Vector3d omega_70 = omega + Eigen::Vector3d(0, 0.0625 * wv, wv);
  auto floor = [](Eigen::Vector3d w) { return w.cwiseMax(1e-12); };  // a population without variability
  double eb_w = 0, eb_70 = 0;
  for (const auto& [s, p] : subjects) {
    eb_w += eb_squared_error(s, pk_typical(o, p.weight), floor(omega), sigma2);
    eb_70 += eb_squared_error(s, pk_typical(o, 70.0), floor(omega_70), sigma2);
  }
  e.eb_at_weight = std::sqrt(eb_w / n);
  e.eb_70kg = std::sqrt(eb_70 / n);
  return e;
}

}  // namespace cvnode
