// `cvnode bench-flow`: the cost of a continuous normalizing flow's log-density with the exact
// trace (D probe columns: D Jacobian-vector products in the forward pass and their reverse) and
// with Hutchinson's estimator (K probes), by dimension D: microseconds per batched evaluation of
// the flow's right-hand side plus its VJP, and milliseconds per minibatch gradient (forward
// solve and backward pass through the chosen engine). One JSON line per (D, trace);
// minimum and median over rounds, since this machine's speed drifts under shared load.
#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "cvnode/cnf_model.h"
#include "cvnode/densities.h"

namespace cvnode::app {

namespace {

struct BenchFlowArgs {
  std::vector<int> dims = {2, 4, 8, 16, 32, 64};
  std::vector<int> hidden = {64, 64, 64};
  std::vector<std::string> traces = {"exact", "hutchinson"};
  int probes = 1;
  int batch = 128;
  std::string method = "dopri5";
  double rtol = 1e-5;
  int repeats = 5;
  int threads = 1;
  double eval_seconds = 0.3;
};

}  // namespace

std::pair<double, double> time_call(const std::function<void()>& call, int rounds, double window) {
  call();
  std::vector<double> t;
  for (int r = 0; r < rounds; ++r) {
    long n = 0;
    const auto start = std::chrono::steady_clock::now();
    double elapsed = 0;
    do {
      call();
      ++n;
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    } while (elapsed < window);
    t.push_back(elapsed / n);
  }
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2]};
}

namespace {

void bench_flow(const BenchFlowArgs& a) {
  for (int D : a.dims) {
    DensityOptions dopt;
    dopt.kind = "mixture";
    dopt.dim = D;
    const Matrix X = make_density(dopt)->sample(a.batch, 1);
    std::vector<std::size_t> rows(a.batch);
    for (int i = 0; i < a.batch; ++i) rows[i] = i;
    for (const std::string& trace : a.traces) {
      CnfModelOptions o;
      o.hidden = a.hidden;
      o.trace = parse_trace_estimator(trace);
      o.probes = a.probes;
      CnfModel model(o, D);
      const Vector theta = model.initial_parameters();
      const Cnf& cnf = model.dynamics();
      const int n = cnf.state_size();
      // One batched right-hand side and VJP over the whole batch (the stacked solves' unit of work).
      Matrix Y(n, a.batch), F(n, a.batch), A = Matrix::Ones(n, a.batch), AY(n, a.batch);
      for (int b = 0; b < a.batch; ++b) Y.col(b) = cnf.initial_state(X.row(b).transpose(), probe_seed(1, 0, b));
      Vector work(cnf.batch_workspace_size(a.batch)), g(model.param_size());
      const auto eval = time_call(
          [&] {
            cnf.rhs_batch(0.5, Y, theta, F, work);
            cnf.vjp_batch_again(0.5, Y, theta, A, AY, g, work);
          },
          a.repeats, a.eval_seconds);
      SolverOptions s;
      s.method = a.method;
      s.rtol = s.atol = a.rtol;
      CnfEngine engine = model.engine(s, a.batch, a.threads);
      CnfMinibatch last;
      const auto grad = time_call([&] { last = model.gradient(theta, X, rows, CnfStep{}, engine); }, a.repeats, 0.0);
      nlohmann::json j{{"bench", "cnf_trace"},
                       {"dim", D},
                       {"trace", trace},
                       {"probes", o.trace == TraceEstimator::Exact ? D : a.probes},
                       {"hidden", a.hidden},
                       {"batch", a.batch},
                       {"method", a.method},
                       {"rtol", a.rtol},
                       {"threads", a.threads},
                       {"rounds", a.repeats},
                       {"us_eval_min", 1e6 * eval.first},
                       {"us_eval_median", 1e6 * eval.second},
                       {"ms_gradient_min", 1e3 * grad.first},
                       {"ms_gradient_median", 1e3 * grad.second},
                       {"nfe_forward", last.nfe_forward},
                       {"nfe_backward", last.nfe_backward},
                       {"params", model.param_size()}};
      std::cout << j.dump() << std::endl;
    }
  }
}

}  // namespace

void add_bench_flow(CLI::App& app) {
  auto a = std::make_shared<BenchFlowArgs>();
  CLI::App* cmd = app.add_subcommand("bench-flow", "Flow cost by dimension: exact trace against Hutchinson (JSON lines)");
  cmd->add_option("--dims", a->dims, "Dimensions D")->delimiter(',')->capture_default_str();
  cmd->add_option("--hidden", a->hidden, "Hidden widths of the time-conditioned MLP")->delimiter(',')->capture_default_str();
  cmd->add_option("--trace", a->traces, "exact and/or hutchinson")->delimiter(',')
      ->check(CLI::IsMember({"exact", "hutchinson"}))->capture_default_str();
  cmd->add_option("--probes", a->probes, "Hutchinson probes per sample")->capture_default_str();
  cmd->add_option("--batch", a->batch, "Samples (one stacked solve)")->capture_default_str();
  cmd->add_option("--method", a->method, "adams, bdf or dopri5")->check(CLI::IsMember({"adams", "bdf", "dopri5"}))
      ->capture_default_str();
  cmd->add_option("--rtol", a->rtol, "rtol = atol of the gradient's solves")->capture_default_str();
  cmd->add_option("--repeats", a->repeats, "Timing rounds (minimum and median reported)")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads")->capture_default_str();
  cmd->callback([a] { bench_flow(*a); });
}

}  // namespace cvnode::app
