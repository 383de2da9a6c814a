#include "cvnode/rank_backend.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <ctime>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "core/names.h"
#include "cvnode/errors.h"
#include "cvnode/preemption.h"

namespace cvnode {

namespace {

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

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

std::uint64_t series_key(const Trajectory& series) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&](std::uint64_t v) {
    h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
  };
  auto bits = [](double x) {
    std::uint64_t v;
    std::memcpy(&v, &x, sizeof v);
    return v;
  };
  const Eigen::Index n = series.times.size();
  mix(static_cast<std::uint64_t>(n));
  mix(bits(series.t0));
  if (n > 0) {
    mix(bits(series.times[0]));
    mix(bits(series.times[n / 2]));
    mix(bits(series.times[n - 1]));
  }
  for (Eigen::Index i = 0; i < std::min<Eigen::Index>(series.z0.size(), 4); ++i) mix(bits(series.z0[i]));
  return h;
}

namespace {
const detail::EnumName<Reduction> kReductionNames[] = {
    {Reduction::Reproducible, "reproducible"},
    {Reduction::Fast, "fast"}};
}  // namespace

Reduction parse_reduction(const std::string& name) {
  return detail::parse_enum(kReductionNames, name, "reduction");
}

const char* reduction_name(Reduction r) { return detail::enum_name(kReductionNames, r); }

namespace {
const detail::EnumName<Balance> kBalanceNames[] = {
    {Balance::Dynamic, "dynamic"},
    {Balance::Static, "static"}};
}  // namespace

Balance parse_balance(const std::string& name) { return detail::parse_enum(kBalanceNames, name, "balance"); }

const char* balance_name(Balance b) { return detail::enum_name(kBalanceNames, b); }

RankBackend::RankBackend(const Dynamics& dynamics, const SolverOptions& options, const BatchOptions& batch,
                         const Ranks& ranks, Reduction reduction, bool exchange_series, Balance balance)
    : solver_(dynamics, options, batch), ranks_(ranks), reduction_(reduction), exchange_series_(exchange_series),
      balance_(balance),
      split_wait_(std::getenv("CVNODE_RANK_TIMING") != nullptr) {}

// One step costs one reduction (sums, counters, the stop flag, the byte counts of the per-series
// messages all in one vector) and, only when some rank has per-series results to share (learned
// initial states, failures), one allgather. Units come from a counter that is never reset: step
// k's units are [base, base + U), and every thread stops after its first fetch past them, so the
// next base is base + U + (those failed fetches, counted in the reduction).
BatchGradient RankBackend::gradient(ConstVectorRef theta, const Problem& problem) {
  const int B = problem.size();
  const std::vector<WorkUnit> units = solver_.plan(problem);
  const int U = static_cast<int>(units.size());
  const Eigen::Index R = problem.loss().param_size();
  const Eigen::Index P = theta.size();
  BatchGradient out;
  out.z0.resize(B);
  out.states.resize(B);
  out.series_loss.assign(B, 0.0);
  GradientSums sums;
  sums.reset(P, R);
  std::vector<std::exception_ptr> errors(U);
  std::vector<char> mine(U, 0);
  long local_next = 0, past_end = 0;
  const long base = ranks_.counter_base();

  // Hand-out order: the units expected to take longest first (every rank computes the same
  // order from the same agreed costs; series never solved yet count as the most expensive).
  // The order changes which rank solves what, never the sums' bits.
  std::vector<int> order(static_cast<std::size_t>(U));
  std::iota(order.begin(), order.end(), 0);
  std::vector<std::uint64_t> keys(static_cast<std::size_t>(B));
  for (int b = 0; b < B; ++b) keys[b] = series_key(problem.series(b));
  if (balance_ == Balance::Dynamic && ranks_.distributed()) {
    std::vector<double> expected(static_cast<std::size_t>(U), 0.0);
    for (int u = 0; u < U; ++u)
      for (std::size_t b = units[u].begin; b < units[u].end; ++b) {
        const auto it = cost_.find(keys[b]);
        expected[u] += it == cost_.end() ? std::numeric_limits<double>::infinity() : it->second;
      }
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return expected[a] > expected[b]; });
  }
  // Shard reads: this rank solves exactly the units of the series it holds.
  std::vector<int> owned;
  const bool by_owner = !owners_.empty();
  if (by_owner) {
    if (static_cast<int>(owners_.size()) != B)
      throw std::logic_error("RankBackend: " + std::to_string(owners_.size()) + " series owners for " +
                             std::to_string(B) + " series");
    for (int u = 0; u < U; ++u) {
      const int who = owners_[units[u].begin];
      for (std::size_t b = units[u].begin; b < units[u].end; ++b)
        if (owners_[b] != who) throw std::logic_error("RankBackend: a stacked unit spans series of several ranks' shards");
      if (who == ranks_.rank()) owned.push_back(u);
    }
    owners_.clear();
  }
  // Each thread's current unit and when it took it: the next call to next() on that thread ends it.
  const int threads = std::max(1, solver_.threads());
  std::vector<int> current(static_cast<std::size_t>(threads), -1);
  std::vector<clock_type::time_point> started(static_cast<std::size_t>(threads));
  std::vector<double> seconds(static_cast<std::size_t>(U), 0.0);

  const double cpu0 = process_cpu_seconds();
  const auto t0 = clock_type::now();
  solver_.solve_units(theta, problem, units,
                      [&] {
                        const int t = std::min(threads - 1, omp_get_thread_num());
                        const auto now = clock_type::now();
                        if (current[t] >= 0) seconds[current[t]] = std::chrono::duration<double>(now - started[t]).count();
                        current[t] = -1;
                        long u;
                        if (by_owner) {
                          if (local_next >= static_cast<long>(owned.size())) return -1;
                          u = owned[static_cast<std::size_t>(local_next++)];
                          mine[u] = 1;
                          current[t] = static_cast<int>(u);
                          started[t] = now;
                          return static_cast<int>(u);
                        }
                        if (!ranks_.distributed()) {
                          u = local_next++;
                        } else if (balance_ == Balance::Static) {
                          u = ranks_.rank() + ranks_.size() * local_next++;  // no counter
                          if (u >= U) return -1;
                        } else {
                          u = ranks_.fetch_add(1) - base;
                        }
                        if (u < 0 || u >= U) {
                          ++past_end;
                          return -1;
                        }
                        u = order[u];
                        mine[u] = 1;
                        current[t] = static_cast<int>(u);
                        started[t] = now;
                        return static_cast<int>(u);
                      },
                      sums, out, errors);
  const auto t1 = clock_type::now();
  timing_.compute += std::chrono::duration<double>(t1 - t0).count();
  timing_.compute_cpu += process_cpu_seconds() - cpu0;
  if (split_wait_) ranks_.barrier();  // only to tell waiting (imbalance) from communication
  const auto t2 = clock_type::now();
  timing_.wait += std::chrono::duration<double>(t2 - t1).count();

  // This rank's per-series results: failures always, z0 gradients and losses when asked for. A
  // refused configuration or a bug is no series' failure: describe_failure rethrows it, this rank
  // stops and the program's top level aborts the others (Ranks::abort) before the reduction.
  Writer w;
  long units_here = 0;
  for (int u = 0; u < U; ++u) {
    if (!mine[u]) continue;
    ++units_here;
    if (!errors[u] && !exchange_series_) continue;
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

  // The one reduction. Integer counters ride along as exact integer-valued doubles.
  const std::vector<long> counters = pack_counters(sums.forward, sums.backward, sums.nfe_forward, sums.nfe_backward);
  const Eigen::Index S = sums.values.size(), C = static_cast<Eigen::Index>(counters.size());
  const int size = ranks_.size();
  // [sums | counters | fetches past the end | stop signal seen | SIGUSR1 seen | bytes of rank r ...
  //  | seconds of unit u ...] (each unit's seconds come from the one rank that solved it)
  const Eigen::Index T = S + C + 3 + size;
  ExactSum all(T + U);
  all.merge_range(sums.values, 0);
  for (Eigen::Index i = 0; i < C; ++i) all.add(S + i, static_cast<double>(counters[i]));
  all.add(S + C, static_cast<double>(past_end));
  const int sig = stop_signal();
  all.add(S + C + 1, sig != 0 ? 1.0 : 0.0);
  all.add(S + C + 2, sig == SIGUSR1 ? 1.0 : 0.0);
  all.add(S + C + 3 + ranks_.rank(), static_cast<double>(w.bytes.size()));
  for (int u = 0; u < U; ++u)
    if (mine[u]) all.add(T + u, seconds[u]);
  const auto r0 = clock_type::now();
  if (reduction_ == Reduction::Reproducible) {
    ranks_.allreduce(all);
  } else {
    std::vector<double> v(static_cast<std::size_t>(all.size()));
    all.values(v.data(), all.size());
    ranks_.allreduce_sum(v);
    all.reset(all.size());
    all.add(v.data(), static_cast<Eigen::Index>(v.size()));
  }
  timing_.reduce += since(r0);
  const Vector total = all.values();
  // Every rank records the same costs (a stack's seconds spread over its series).
  for (int u = 0; u < U; ++u)
    for (std::size_t b = units[u].begin; b < units[u].end; ++b)
      cost_[keys[b]] = total[T + u] / static_cast<double>(units[u].end - units[u].begin);
  sums.values.reset(S);
  sums.values.add(total.data(), S);
  std::vector<long> summed(static_cast<std::size_t>(C));
  for (Eigen::Index i = 0; i < C; ++i) summed[i] = std::lround(total[S + i]);
  unpack_counters(summed, sums.forward, sums.backward, sums.nfe_forward, sums.nfe_backward);
  if (balance_ == Balance::Dynamic && !by_owner) ranks_.advance_counter(U + std::lround(total[S + C]));
  agreed_stop_ = total[S + C + 1] > 0 ? (sig ? sig : total[S + C + 2] > 0 ? SIGUSR1 : SIGTERM) : 0;

  std::vector<long> bytes(size);
  long any = 0;
  for (int r = 0; r < size; ++r) any += bytes[r] = std::lround(total[S + C + 3 + r]);
  if (any > 0) {
    for (const std::string& part : ranks_.allgatherv(w.bytes, bytes)) {
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
  }
  std::sort(out.failures.begin(), out.failures.end(),
            [](const SeriesFailure& a, const SeriesFailure& b) { return a.series < b.series; });
  sums.finish(out, P);
  timing_.communicate += since(t2);
  ++timing_.steps;
  timing_.units += units_here;
  return out;
}

std::string timing_report(const Ranks& ranks, const StepTiming& t) {
  Writer w;
  w.put(t.compute);
  w.put(t.wait);
  w.put(t.communicate);
  w.put(t.reduce);
  w.put(t.compute_cpu);
  w.put(t.steps);
  w.put(t.units);
  const std::vector<std::string> all = ranks.allgather(w.bytes);
  if (!ranks.root()) return "";
  std::string compute, wait, comm, reduce, cpu, units;
  long steps = 0;
  char buf[64];
  for (std::size_t r = 0; r < all.size(); ++r) {
    Reader rd{all[r]};
    const double c = rd.get<double>(), wt = rd.get<double>(), cm = rd.get<double>();
    const double rc = rd.get<double>(), cc = rd.get<double>();
    steps = rd.get<long>();
    const long u = rd.get<long>();
    const double per = steps > 0 ? 1.0 / steps : 0.0;
    const char* sep = r ? "," : "";
    std::snprintf(buf, sizeof buf, "%s%.6f", sep, c * per);
    compute += buf;
    std::snprintf(buf, sizeof buf, "%s%.6f", sep, wt * per);
    wait += buf;
    std::snprintf(buf, sizeof buf, "%s%.6f", sep, cm * per);
    comm += buf;
    std::snprintf(buf, sizeof buf, "%s%.6f", sep, rc * per);
    reduce += buf;
    std::snprintf(buf, sizeof buf, "%s%.6f", sep, cc * per);
    cpu += buf;
    units += std::string(sep) + std::to_string(u);
  }
  return "{\"ranks\":" + std::to_string(all.size()) + ",\"steps\":" + std::to_string(steps) +
         ",\"compute_s_per_step\":[" + compute + "],\"wait_s_per_step\":[" + wait +
         "],\"communicate_s_per_step\":[" + comm + "],\"reduce_s_per_step\":[" + reduce +
         "],\"compute_cpu_s_per_step\":[" + cpu + "],\"units\":[" + units + "]}";
}

Evaluation evaluate_on_ranks(const Ranks& ranks, const Dynamics& dynamics, ConstVectorRef theta,
                             const Problem& problem, const SolverOptions& options, int threads) {
  if (!ranks.distributed()) return evaluate(dynamics, theta, problem, options, threads);
  const int S = problem.size();
  std::vector<int> index;
  for (int s = ranks.rank(); s < S; s += ranks.size()) index.push_back(s);
  const Problem local = problem.select(index);  // scored as in the whole problem
  Evaluation part = evaluate(dynamics, theta, local, options, threads);
  Evaluation ev;
  ev.series = S;
  ev.mean_entries = part.mean_entries;  // the whole problem's (a selection keeps it)
  ev.predictions.resize(S);
  ev.series_nfe.assign(S, 0);
  for (std::size_t i = 0; i < index.size(); ++i) {
    ev.predictions[index[i]] = std::move(part.predictions[i]);
    ev.series_nfe[index[i]] = part.series_nfe[i];
  }
  ev.sums = std::move(part.sums);
  const int C = S > 0 ? static_cast<int>(problem.series(0).values.cols()) : 0;
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
  finish_evaluation(ev);
  return ev;
}

}  // namespace cvnode
