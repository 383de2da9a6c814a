#include "cvnode/rank_backend.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "cvnode/errors.h"

namespace cvnode {

namespace {

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// Per-unit results travel between ranks as flat bytes.
struct Writer {
  std::string bytes;
  template <class T>
  void put(const T& v) { bytes.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void put(const double* v, Eigen::Index n) { bytes.append(reinterpret_cast<const char*>(v), sizeof(double) * n); }
  void put(const std::string& s) {
    put(static_cast<long>(s.size()));
    bytes += s;
  }
};
struct Reader {
  const std::string& bytes;
  std::size_t at = 0;
  template <class T>
  T get() {
    T v;
    if (at + sizeof v > bytes.size()) throw std::runtime_error("rank results: truncated message");
    std::memcpy(&v, bytes.data() + at, sizeof v);
    at += sizeof v;
    return v;
  }
  void get(double* v, Eigen::Index n) {
    const std::size_t len = sizeof(double) * static_cast<std::size_t>(n);
    if (at + len > bytes.size()) throw std::runtime_error("rank results: truncated message");
    std::memcpy(v, bytes.data() + at, len);
    at += len;
  }
  std::string str() {
    const auto n = static_cast<std::size_t>(get<long>());
    if (at + n > bytes.size()) throw std::runtime_error("rank results: truncated message");
    std::string s = bytes.substr(at, n);
    at += n;
    return s;
  }
  bool done() const { return at >= bytes.size(); }
};

void put_failure(Writer& w, const SeriesFailure& f) {
  w.put(f.series);
  w.put(f.flag);
  w.put(f.time);
  w.put(f.message);
  w.put(f.flag_name);
}
SeriesFailure get_failure(Reader& r) {
  SeriesFailure f;
  f.series = r.get<int>();
  f.flag = r.get<int>();
  f.time = r.get<double>();
  f.message = r.str();
  f.flag_name = r.str();
  return f;
}

std::vector<long> pack_counters(const SolverStats& f, const SolverStats& b, long nf, long nb) {
  std::vector<long> v;
  for (const SolverStats* s : {&f, &b})
    v.insert(v.end(), {s->steps, s->rhs_evals, s->quad_evals, s->jac_evals, s->lin_setups, s->lin_iters,
                       s->jtimes_evals, s->nonlin_iters, s->err_test_fails, s->nonlin_conv_fails,
                       s->checkpoints, s->restarts});
  v.push_back(nf);
  v.push_back(nb);
  return v;
}
void unpack_counters(const std::vector<long>& v, SolverStats& f, SolverStats& b, long& nf, long& nb) {
  std::size_t i = 0;
  for (SolverStats* s : {&f, &b})
    for (long* x : {&s->steps, &s->rhs_evals, &s->quad_evals, &s->jac_evals, &s->lin_setups, &s->lin_iters,
                    &s->jtimes_evals, &s->nonlin_iters, &s->err_test_fails, &s->nonlin_conv_fails,
                    &s->checkpoints, &s->restarts})
      *x = v[i++];
  nf = v[i++];
  nb = v[i++];
}

}  // namespace

Reduction parse_reduction(const std::string& name) {
  if (name == "reproducible") return Reduction::Reproducible;
  if (name == "fast") return Reduction::Fast;
  throw std::invalid_argument("unknown reduction '" + name + "' (expected reproducible or fast)");
}

const char* reduction_name(Reduction r) { return r == Reduction::Fast ? "fast" : "reproducible"; }

RankBackend::RankBackend(const Dynamics& dynamics, const SolverOptions& options, const BatchOptions& batch,
                         const Ranks& ranks, Reduction reduction)
    : solver_(dynamics, options, batch), ranks_(ranks), reduction_(reduction) {}

BatchGradient RankBackend::gradient(ConstVectorRef theta, const std::vector<Trajectory>& batch,
                                    const Loss& loss, const RunningCost* running_cost, const Matrix* readout) {
  const int B = static_cast<int>(batch.size());
  const std::vector<WorkUnit> units = solver_.plan(batch, running_cost);
  const int U = static_cast<int>(units.size());
  const Eigen::Index R = readout ? readout->size() : 0;
  BatchGradient out;
  out.z0.resize(B);
  out.states.resize(B);
  out.series_loss.assign(B, 0.0);
  GradientSums sums;
  sums.reset(theta.size(), R);
  std::vector<std::exception_ptr> errors(U);
  std::vector<char> mine(U, 0);
  long local_next = 0;  // one rank: no shared counter

  // Compute: units from the shared counter until it passes U.
  const auto t0 = clock_type::now();
  ranks_.reset_counter();
  solver_.solve_units(theta, batch, units, loss, BatchSolver::loss_scale(batch, loss), running_cost, readout,
                      [&] {
                        const long u = ranks_.distributed() ? ranks_.fetch_add(1) : local_next++;
                        if (u < 0 || u >= U) return -1;
                        mine[u] = 1;
                        return static_cast<int>(u);
                      },
                      sums, out, errors);
  const auto t1 = clock_type::now();
  timing_.compute += std::chrono::duration<double>(t1 - t0).count();
  ranks_.barrier();  // only to tell waiting (imbalance) from communication
  const auto t2 = clock_type::now();
  timing_.wait += std::chrono::duration<double>(t2 - t1).count();

  // Reduce the sums: exact (reproducible) or plain.
  if (reduction_ == Reduction::Reproducible) {
    ranks_.allreduce(sums.values);
  } else {
    std::vector<double> v(static_cast<std::size_t>(sums.values.size()));
    sums.values.values(v.data(), sums.values.size());
    ranks_.allreduce_sum(v);
    sums.values.reset(sums.values.size());
    sums.values.add(v.data(), static_cast<Eigen::Index>(v.size()));
  }
  std::vector<long> counters = pack_counters(sums.forward, sums.backward, sums.nfe_forward, sums.nfe_backward);
  ranks_.allreduce_sum(counters);
  unpack_counters(counters, sums.forward, sums.backward, sums.nfe_forward, sums.nfe_backward);

  // Every rank's per-series results (z0 gradients, losses, failures) to every rank.
  Writer w;
  long units_here = 0;
  for (int u = 0; u < U; ++u) {
    if (!mine[u]) continue;
    ++units_here;
    w.put(u);
    const char ok = errors[u] ? 0 : 1;
    w.put(ok);
    for (std::size_t b = units[u].begin; b < units[u].end; ++b) {
      if (ok) {
        w.put(static_cast<long>(out.z0[b].size()));
        w.put(out.z0[b].data(), out.z0[b].size());
        w.put(out.series_loss[b]);
      } else {
        put_failure(w, describe_failure(static_cast<int>(b), errors[u]));
      }
    }
  }
  for (const std::string& part : ranks_.allgather(w.bytes)) {
    Reader r{part};
    while (!r.done()) {
      const int u = r.get<int>();
      const char ok = r.get<char>();
      if (u < 0 || u >= U) throw std::runtime_error("rank results: unit index out of range");
      for (std::size_t b = units[u].begin; b < units[u].end; ++b) {
        if (ok) {
          const auto len = r.get<long>();
          out.z0[b].resize(len);
          r.get(out.z0[b].data(), len);
          out.series_loss[b] = r.get<double>();
        } else {
          out.failures.push_back(get_failure(r));
        }
      }
    }
  }
  std::sort(out.failures.begin(), out.failures.end(),
            [](const SeriesFailure& a, const SeriesFailure& b) { return a.series < b.series; });
  sums.finish(out, readout ? readout->rows() : 0, readout ? readout->cols() : 0);
  if (!readout) out.readout.resize(0, 0);
  timing_.communicate += since(t2);
  ++timing_.steps;
  timing_.units += units_here;
  return out;
}

Evaluation evaluate_on_ranks(const Ranks& ranks, const Dynamics& dynamics, ConstVectorRef theta,
                             const std::vector<Trajectory>& series, const SolverOptions& options,
                             const Loss& loss, int threads, const Matrix* readout) {
  if (!ranks.distributed()) return evaluate(dynamics, theta, series, options, loss, threads, readout);
  const int S = static_cast<int>(series.size());
  std::vector<Trajectory> local;
  std::vector<int> index;
  for (int s = ranks.rank(); s < S; s += ranks.size()) {
    local.push_back(series[s]);
    index.push_back(s);
  }
  Evaluation part = evaluate(dynamics, theta, local, options, loss, threads, readout);
  Evaluation ev;
  ev.series = S;
  ev.predictions.resize(S);
  ev.series_nfe.assign(S, 0);
  for (std::size_t i = 0; i < local.size(); ++i) {
    ev.predictions[index[i]] = std::move(part.predictions[i]);
    ev.series_nfe[index[i]] = part.series_nfe[i];
  }
  ev.sums = std::move(part.sums);
  const int C = S > 0 ? static_cast<int>(series[0].values.cols()) : 0;
  if (ev.sums.size() != 1 + 3 * C) ev.sums.reset(1 + 3 * C);  // a rank without series
  ranks.allreduce(ev.sums);
  std::vector<long> counts{part.nfe};
  ranks.allreduce_sum(counts);
  ev.nfe = counts[0];
  Writer w;
  for (const auto& f : part.failed) {
    SeriesFailure g = f;
    g.series = index[f.series];
    put_failure(w, g);
  }
  for (const std::string& bytes : ranks.allgather(w.bytes)) {
    Reader r{bytes};
    while (!r.done()) ev.failed.push_back(get_failure(r));
  }
  std::sort(ev.failed.begin(), ev.failed.end(),
            [](const SeriesFailure& a, const SeriesFailure& b) { return a.series < b.series; });
  ev.failures = static_cast<int>(ev.failed.size());
  finish_evaluation(ev, loss);
  return ev;
}

}  // namespace cvnode
