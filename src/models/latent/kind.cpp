#include "models/latent/kind.h"

#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cvnode/errors.h"
#include "models/latent/batch.h"
#include "models/latent/latent_ode.h"
#include "models/latent/rnn_baseline.h"

namespace cvnode::latent {

struct SequenceKind::Impl {
  LatentOptions o;
  ModelOptions m;
  SolverOptions solver;
  int threads = 1, channels = 0;
  Vector noise;  // model units
  std::unique_ptr<LatentOde> ode;
  std::unique_ptr<RnnBaseline> rnn;
  std::vector<std::unique_ptr<LatentOde::Context>> ctx;  // one per thread (latent_ode)
  std::vector<Trajectory> train;
  nlohmann::json spec;
  RegularizationOptions reg;

  int param_size() const { return ode ? ode->param_size() : rnn->param_size(); }
  LatentOde::Context& context(int thread) { return *ctx[thread]; }
};

namespace {

void check_sizes(const char* key, const std::vector<int>& v) {
  for (int w : v)
    if (w < 1) throw OptionsError(std::string(key) + " has a width " + std::to_string(w) + "; widths must be >= 1");
}

}  // namespace

SequenceKind::SequenceKind(const std::string& kind, const LatentOptions& o, const ModelOptions& m, int channels,
                           const Vector& data_std, const SolverOptions& solver, int threads)
    : impl_(std::make_unique<Impl>()), kind_(kind) {
  if (std::string why = o.validate(channels); !why.empty()) throw OptionsError(why);
  if (data_std.size() != channels) throw OptionsError("one data std per channel is needed");
  check_sizes("model.hidden", m.hidden);
  Impl& I = *impl_;
  I.o = o;
  I.m = m;
  I.solver = solver;
  I.threads = resolve_threads(threads);
  I.channels = channels;
  I.noise.resize(channels);
  for (int c = 0; c < channels; ++c)
    I.noise[c] = (o.decoder.noise_std.size() == 1 ? o.decoder.noise_std[0] : o.decoder.noise_std[c]) / data_std[c];
  I.spec["kind"] = kind;
  I.spec["channels"] = channels;
  I.spec["encoder"] = {{"kind", o.encoder.kind}, {"hidden", o.encoder.hidden}, {"head_hidden", o.encoder.head_hidden},
                       {"ode_hidden", o.encoder.ode_hidden}, {"activation", activation_name(o.encoder.activation)}};
  I.spec["decoder"] = {{"hidden", o.decoder.hidden}, {"activation", activation_name(o.decoder.activation)},
                       {"learn_noise", o.decoder.learn_noise}};
  if (kind == "latent_ode") {
    LatentOdeSpec s;
    s.channels = channels;
    s.latent = o.latent_dim;
    s.encoder.kind = parse_encoder_kind(o.encoder.kind);
    s.encoder.hidden = o.encoder.hidden;
    s.encoder.head_hidden = o.encoder.head_hidden;
    s.encoder.head_activation = o.encoder.activation;
    s.encoder.ode_hidden = o.encoder.ode_hidden;
    s.encoder.ode_activation = o.encoder.activation;
    s.dynamics_hidden = m.hidden;
    s.dynamics_activation = m.activation;
    s.decoder_hidden = o.decoder.hidden;
    s.decoder_activation = o.decoder.activation;
    s.learn_noise = o.decoder.learn_noise;
    s.noise_std = I.noise;
    s.poisson = o.poisson;
    s.intensity_hidden = o.intensity_hidden;
    I.ode = std::make_unique<LatentOde>(s);
    solver.check(I.ode->ode().state_size());
    for (int t = 0; t < I.threads; ++t) I.ctx.push_back(std::make_unique<LatentOde::Context>(*I.ode, solver));
    I.spec["latent_dim"] = o.latent_dim;
    I.spec["dynamics"] = {{"hidden", m.hidden}, {"activation", activation_name(m.activation)}};
    I.spec["poisson"] = o.poisson;
    if (o.poisson) I.spec["intensity_hidden"] = o.intensity_hidden;
  } else if (kind == "rnn_baseline") {
    RnnBaselineSpec s;
    s.channels = channels;
    s.hidden = o.encoder.hidden;
    s.output_hidden = o.decoder.hidden;
    s.output_activation = o.decoder.activation;
    s.noise_std = I.noise;
    I.rnn = std::make_unique<RnnBaseline>(s);
  } else {
    throw OptionsError("unknown sequence model kind '" + kind + "' (expected latent_ode or rnn_baseline)");
  }
  I.spec["params"] = I.param_size();
}

SequenceKind::~SequenceKind() = default;

int SequenceKind::param_size() const { return impl_->param_size(); }

Vector SequenceKind::initial_parameters() const {
  return impl_->ode ? impl_->ode->initial_parameters(impl_->m.seed) : impl_->rnn->initial_parameters(impl_->m.seed);
}

std::string SequenceKind::spec() const { return impl_->spec.dump(); }

std::string SequenceKind::describe() const {
  const Impl& I = *impl_;
  std::ostringstream o;
  if (I.ode) {
    o << "latent_ode: encoder " << I.o.encoder.kind << " (GRU " << I.o.encoder.hidden << "), latent " << I.o.latent_dim
      << ", dynamics " << activation_name(I.m.activation) << " [";
    for (std::size_t i = 0; i < I.m.hidden.size(); ++i) o << (i ? ", " : "") << I.m.hidden[i];
    o << "], decoder [";
    for (std::size_t i = 0; i < I.o.decoder.hidden.size(); ++i) o << (i ? ", " : "") << I.o.decoder.hidden[i];
    o << "], noise " << (I.o.decoder.learn_noise ? "learned" : "fixed") << ", " << (I.o.iwae ? "IWAE" : "ELBO")
      << " K = " << I.o.samples << (I.o.poisson ? ", Poisson times" : "");
  } else {
    o << "rnn_baseline: GRU " << I.o.encoder.hidden << ", output [";
    for (std::size_t i = 0; i < I.o.decoder.hidden.size(); ++i) o << (i ? ", " : "") << I.o.decoder.hidden[i];
    o << "]";
  }
  o << ", " << param_size() << " parameters";
  return o.str();
}

void SequenceKind::set_training_series(std::vector<Trajectory> series) { impl_->train = std::move(series); }

void SequenceKind::set_regularization(const RegularizationOptions& r) {
  Impl& I = *impl_;
  if (std::string why = r.validate(); !why.empty()) throw OptionsError(why);
  if (!r.any()) {
    I.reg = r;
    return;
  }
  if (!I.ode)
    throw OptionsError("[regularization] applies to model.kind = \"latent_ode\" (its latent dynamics), not to \"" +
                       kind_ + "\"");
  if (I.o.poisson && (r.kinetic_weight > 0 || r.jacobian_weight > 0))
    throw OptionsError("regularization.kinetic_weight and jacobian_weight act on the latent dynamics alone; with "
                       "loss.poisson = true the solved state also carries the intensities: set them to 0");
  // Throws naming regularization.error_weight for the CVODES adjoint. Each of the K samples' paths
  // weighs 1/K, like its share of the ELBO.
  const SolverOptions path = with_error_penalty(I.solver, r.error_weight / I.o.samples);
  I.ctx.clear();
  for (int t = 0; t < I.threads; ++t) I.ctx.push_back(std::make_unique<LatentOde::Context>(*I.ode, I.solver, path));
  I.reg = r;
}

double SequenceKind::kl_weight(int epoch) const {
  const int w = impl_->o.kl_warmup_epochs;
  return w > 0 ? std::min(1.0, static_cast<double>(epoch) / w) : 1.0;
}

MinibatchGradient SequenceKind::gradient(const Vector& params, const std::vector<std::size_t>& series,
                                         const StepContext& ctx) {
  Impl& I = *impl_;
  ElboSettings st{I.o.samples, I.o.iwae, kl_weight(ctx.epoch)};
  // This step's running costs (Hutchinson probes from the step), 1/K per sample's path.
  std::vector<std::shared_ptr<const RunningCost>> costs;
  if (I.ode && (I.reg.kinetic_weight > 0 || I.reg.jacobian_weight > 0)) {
    RegularizationOptions per_sample = I.reg;
    per_sample.kinetic_weight /= I.o.samples;
    per_sample.jacobian_weight /= I.o.samples;
    costs = regularizer_costs(I.ode->ode(), per_sample, ctx.seed ^ (0xA24BAED4963EE407ULL * (ctx.step + 1)));
    st.costs = &costs;
  }
  const double scale = 1.0 / std::max<std::size_t>(1, series.size());
  std::vector<Trajectory> steered;
  if (I.reg.steer > 0)
    for (std::size_t b = 0; b < series.size(); ++b)
      steered.push_back(steer_times(I.train.at(series[b]), I.reg.steer,
                                    LatentOde::noise_seed(ctx.seed ^ 0x5EE7ULL, ctx.step, series[b])));
  SumResult r = sum_in_order(static_cast<int>(series.size()), I.threads, param_size(), true,
                             [&](int th, int b, SeriesResult& out) {
                               // STEER: this step's observation times of the series jittered.
                               const Trajectory& tr =
                                   I.reg.steer > 0 ? steered[b] : I.train.at(series[b]);
                               if (I.ode) {
                                 LatentOde::Context& c = I.context(th);
                                 const long before = c.nfe;
                                 out.loss = I.ode->loss_gradient(
                                     params, tr, st, LatentOde::noise_seed(ctx.seed, ctx.step, series[b]), scale, c,
                                     out.grad);
                                 out.nfe = c.nfe - before;
                               } else {
                                 out.loss = I.rnn->loss(params, tr, scale, &out.grad);
                               }
                             });
  MinibatchGradient g;
  const double kept = static_cast<double>(series.size() - r.failures.size());
  // A mean over the series that were solved: rescale when some failed.
  const double factor = kept > 0 ? static_cast<double>(series.size()) / kept : 0.0;
  g.loss = r.loss * factor;
  g.grad = r.grad * factor;
  g.nfe = kept > 0 ? static_cast<long>(r.nfe / kept) : 0;
  g.failures = std::move(r.failures);
  return g;
}

SequenceKind::Score SequenceKind::evaluate(const Vector& params, const std::vector<Trajectory>& series,
                                           std::uint64_t eval_seed) {
  Impl& I = *impl_;
  const ElboSettings st{I.o.samples, I.o.iwae, 1.0};
  std::vector<double> se(series.size(), 0.0), cnt(series.size(), 0.0);
  SumResult r = sum_in_order(static_cast<int>(series.size()), I.threads, 0, false,
                             [&](int th, int s, SeriesResult& out) {
                               const Trajectory& tr = series[s];
                               Matrix pred;
                               if (I.ode) {
                                 LatentOde::Context& c = I.context(th);
                                 out.loss = I.ode->loss(params, tr, st, LatentOde::noise_seed(eval_seed, 0, s), c);
                                 pred = I.ode->sample(params, tr, tr.times, 0, 0, c).means[0];
                               } else {
                                 out.loss = I.rnn->loss(params, tr, 1.0, nullptr);
                                 pred = I.rnn->predict(params, tr, tr.times);
                               }
                               for (Eigen::Index k = 0; k < tr.times.size(); ++k)
                                 for (Eigen::Index c = 0; c < tr.values.cols(); ++c)
                                   if (tr.mask.size() == 0 || tr.mask(k, c) != 0) {
                                     se[s] += std::pow(pred(k, c) - tr.values(k, c), 2);
                                     cnt[s] += 1;
                                   }
                             });
  Score sc;
  double sse = 0, n = 0;
  for (std::size_t s = 0; s < series.size(); ++s)
    if (!std::isnan(r.series_loss[s])) {
      sse += se[s];
      n += cnt[s];
    }
  sc.failures = static_cast<int>(r.failures.size());
  const double ok = static_cast<double>(series.size()) - sc.failures;
  sc.loss = sc.failures > 0 ? std::numeric_limits<double>::infinity() : r.loss / std::max(1.0, ok);
  sc.rmse = std::sqrt(sse / std::max(1.0, n));
  return sc;
}

std::vector<SampleSet> SequenceKind::predict(const Vector& params, const std::vector<Trajectory>& conditioning,
                                             const std::vector<Vector>& times, int samples, std::uint64_t seed,
                                             const PosteriorOptions& posterior) {
  Impl& I = *impl_;
  if (posterior.importance && !I.ode)
    throw OptionsError("the importance posterior needs a latent_ode model (this is " + kind_ + ")");
  if (std::string why = posterior.validate(); !why.empty()) throw OptionsError("posterior: " + why);
  std::vector<SampleSet> out(conditioning.size());
  SumResult r = sum_in_order(static_cast<int>(conditioning.size()), I.threads, 0, false,
                             [&](int th, int s, SeriesResult&) {
                               SampleSet& o = out[s];
                               if (I.ode) {
                                 PosteriorSamples p = I.ode->sample(params, conditioning[s], times[s], samples,
                                                                    LatentOde::noise_seed(seed, 1, s), I.context(th),
                                                                    posterior);
                                 o.ess = p.ess;
                                 o.means = std::move(p.means);
                                 o.latent = std::move(p.latent);
                                 o.noise_std = p.noise_std;
                               } else {
                                 o.means = {I.rnn->predict(params, conditioning[s], times[s])};
                                 o.noise_std = I.noise;
                                 o.ess = 1;
                               }
                             });
  for (const auto& f : r.failures) out[f.series].error = f.message.empty() ? "failed" : f.message;
  return out;
}

}  // namespace cvnode::latent
