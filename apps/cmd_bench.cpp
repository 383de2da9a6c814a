// `cvnode bench PROBLEM.h5`: one gradient of a ../shared/bench problem, timed, compared with its
// reference, printed as the JSON line that ../shared/bench/README.md describes.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <cmath>
#include <iostream>
#include <limits>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "options.h"
#include "cvnode/batch.h"
#include "app/bench_problem.h"
#include "cvnode/errors.h"

namespace cvnode::app {

namespace {

struct BenchArgs {
  std::string file;
  std::string method = "adams";
  std::string linear_solver = "dense";
  double rtol = 1e-6;
  double atol = -1;
  double adjoint_atol = 0;  // SolverOptions' default: scaled to the adjoint
  int max_order = 0;
  int repeats = 5;
  int threads = 1;
  int checkpoint_steps = 100;
  std::string mode = "per_series";
  int stack_size = 32;
  bool polynomial = false;
  bool no_quad_errcon = false;
  bool json = false;
  bool hybrid = false;
  double horizon_scale = 1;
  std::string quadrature = "auto";
  std::string adjoint_form = "auto";
  bool network_rate = false;
};

// --network-rate: the network's own arithmetic rate on the problem's stacked shape (all its
// series as the columns of one batched call) against the machine's single-core GEMM rate, the
// issue-6 measure for B2 ("50% of peak GEMM inside the network evaluations").
double seconds_per_call(const std::function<void()>& call, double min_seconds = 0.5) {
  return time_call(call, 3, min_seconds / 3).first;  // the fastest of three rounds
}

void network_rate(const BenchArgs& a) {
  const BenchProblem p = BenchProblem::load(a.file);
  const auto network = p.network();
  const auto& net = *network;
  const int n = net.state_size();
  const int B = static_cast<int>(p.trajectories.size());
  Matrix Z(n, B), A = Matrix::Ones(n, B) * 0.1, F(n, B), AZ(n, B);
  for (int b = 0; b < B; ++b) Z.col(b) = p.trajectories[b].z0;
  Vector dtheta(net.param_size()), work = Vector::Zero(net.batch_workspace_size(B));
  // Multiply-adds of one batched forward pass, and of a VJP (forward, then per layer dW = G X^T
  // and, below the first layer, W^T G; at the first layer only the state columns of W^T G).
  const auto& L = p.spec.layers;
  double fwd = 0, bwd = 0;
  for (std::size_t l = 0; l + 1 < L.size(); ++l) {
    const double in = L[l], out = L[l + 1];
    fwd += 2 * in * out * B;
    bwd += 2 * in * out * B + 2 * (l == 0 ? n : in) * out * B;
  }
  const double t_rhs = seconds_per_call([&] { net.rhs_batch(0.0, Z, p.theta, F, work); });
  const double t_vjp = seconds_per_call([&] { net.vjp_batch(0.0, Z, p.theta, A, AZ, dtheta, work); });
  const double t_again = seconds_per_call([&] { net.vjp_batch_again(0.0, Z, p.theta, A, AZ, dtheta, work); });
  // The machine's single-core double GEMM rate (Eigen, the same build flags): square products.
  double peak = 0;
  for (int m : {256, 512}) {
    const Matrix X = Matrix::Random(m, m), Y = Matrix::Random(m, m);
    Matrix Zm(m, m);
    const double t = seconds_per_call([&] { Zm.noalias() = X * Y; });
    peak = std::max(peak, 2.0 * m * m * m / t / 1e9);
  }
  nlohmann::json j;
  j["problem"] = p.name;
  j["batch"] = B;
  j["gflops_rhs"] = fwd / t_rhs / 1e9;
  j["gflops_vjp"] = (fwd + bwd) / t_vjp / 1e9;
  j["gflops_vjp_again"] = bwd / t_again / 1e9;
  j["gflops_gemm_peak"] = peak;
  j["fraction_rhs"] = fwd / t_rhs / 1e9 / peak;
  j["fraction_vjp"] = (fwd + bwd) / t_vjp / 1e9 / peak;
  j["us_rhs"] = t_rhs * 1e6;
  j["us_vjp"] = t_vjp * 1e6;
  j["us_vjp_again"] = t_again * 1e6;
  std::cout << j.dump() << std::endl;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;  // kilobytes on Linux
}

void run(const BenchArgs& a) {
  if (a.network_rate) return network_rate(a);
  BenchProblem p = BenchProblem::load(a.file);
  // --horizon-scale K: the observation times stretched by K about t0 (same targets), for the
  // memory-against-horizon measurement; the reference gradient then no longer applies.
  if (!(a.horizon_scale >= 1) || !std::isfinite(a.horizon_scale))
    throw OptionsError("--horizon-scale = " + std::to_string(a.horizon_scale) + " must be >= 1");
  if (a.horizon_scale != 1)
    for (auto& tr : p.trajectories) tr.times = (tr.times.array() - tr.t0) * a.horizon_scale + tr.t0;
  // --hybrid: a problem with k_diag (B3) as physics + network (BenchProblem::dynamics).
  const std::unique_ptr<Dynamics> dynamics = p.dynamics(a.hybrid);
  SolverOptions opt;
  opt.method = a.method;
  opt.cvodes.linear_solver = parse_linear_solver(a.linear_solver);
  opt.rtol = a.rtol;
  opt.atol = a.atol > 0 ? a.atol : a.rtol;
  opt.cvodes.adjoint_atol = a.adjoint_atol;
  opt.cvodes.max_order = a.max_order;
  opt.cvodes.checkpoint_steps = a.checkpoint_steps;
  opt.cvodes.interpolation = a.polynomial ? Interpolation::Polynomial : Interpolation::Hermite;
  opt.cvodes.quadrature_error_control = !a.no_quad_errcon;
  opt.cvodes.quadrature = parse_quadrature(a.quadrature);
  opt.cvodes.adjoint_form = parse_adjoint_form(a.adjoint_form);
  if (a.repeats < 1) throw OptionsError("--repeats = " + std::to_string(a.repeats) + " must be >= 1");
  BatchOptions bo;
  bo.threads = a.threads;
  if (a.mode == "per-series") std::cerr << "note: --mode per-series is spelled per_series now (as in run.batch_mode)\n";
  bo.mode = parse_batch_mode(a.mode == "per-series" ? "per_series" : a.mode);
  bo.stack_size = a.stack_size;
  BatchSolver solver(*dynamics, opt, bo);
  const Problem problem(p.trajectories, p.loss);

  std::vector<double> ms;
  BatchGradient g;
  for (int r = 0; r < a.repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    g = solver.gradient(p.theta, problem);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted.size() % 2 ? sorted[sorted.size() / 2]
                                          : 0.5 * (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]);
  const double grad_err = (g.theta - p.ref_grad).norm() / p.ref_grad.norm();
  const double loss_err = std::abs(g.loss - p.ref_loss) / std::abs(p.ref_loss);

  nlohmann::json j;
  j["problem"] = p.name;
  j["method"] = a.method;
  j["linear_solver"] = a.linear_solver;
  j["dynamics"] = a.hybrid ? "hybrid(linear_decay, mlp)" : "mlp";
  j["rtol"] = opt.rtol;
  j["atol"] = opt.atol;
  const bool backprop = opt.method == "dopri5";
  j["gradient"] = backprop ? "backprop" : "adjoint";
  if (!backprop) {
    // Stacking keeps the blocks of df/dz (one per series), so the form is the same in every mode.
    j["adjoint_form"] = adjoint_form_name(resolved_adjoint_form(opt, *dynamics));
    if (opt.cvodes.adjoint_atol > 0) j["adjoint_atol"] = opt.cvodes.adjoint_atol;
    if (opt.cvodes.adjoint_atol == 0) j["adjoint_atol"] = "scaled";
    if (opt.cvodes.adjoint_atol < 0) j["adjoint_atol"] = "atol";
  }
  j["threads"] = solver.threads();
  j["mode"] = batch_mode_name(bo.mode);
  j["stack_size"] = a.stack_size;
  j["runs"] = a.repeats;
  j["ms_median"] = median;
  j["ms_min"] = sorted.front();
  // The first gradient of the process: workspaces allocated and pages touched for the first time.
  // A user who solves once pays this, not ms_min (docs/performance.md reports both).
  j["ms_first"] = ms.front();
  j["nfe_fwd"] = g.nfe_forward;
  j["nfe_bwd"] = g.nfe_backward;
  j["steps_fwd"] = g.forward.steps;
  j["steps_bwd"] = g.backward.steps;
  j["restarts_bwd"] = g.backward.restarts;
  j["quad_bwd"] = g.backward.quad_evals;  // of nfe_bwd: the gradient quadrature's VJPs
  j["loss"] = g.loss;
  j["ref_loss"] = p.ref_loss;
  j["horizon_scale"] = a.horizon_scale;
  j["horizon"] = p.trajectories.empty() ? 0.0 : p.trajectories[0].horizon() - p.trajectories[0].t0;
  j["checkpoints"] = g.forward.checkpoints;
  if (a.horizon_scale == 1) {
    j["loss_rel_err"] = loss_err;
    j["grad_rel_err"] = grad_err;
  } else {  // no reference for a stretched problem
    j["loss_rel_err"] = nullptr;
    j["grad_rel_err"] = nullptr;
  }
  j["checkpoint_steps"] = opt.cvodes.checkpoint_steps;
  j["quad_errcon"] = opt.cvodes.quadrature_error_control;
  if (!backprop) j["quadrature"] = opt.cvodes.uses_gauss_legendre(opt.is_bdf()) ? "gauss_legendre" : "cvodes";
  j["peak_rss_mb"] = peak_rss_mb();
  if (a.json) {
    std::cout << j.dump() << std::endl;
    return;
  }
  std::cout << p.name << " (" << p.about << ")\n"
            << "  dynamics " << (a.hybrid ? "hybrid(linear_decay, mlp)" : "mlp") << ", method " << a.method << ", rtol " << opt.rtol << ", atol " << opt.atol << ", "
            << solver.threads() << " thread(s)\n"
            << "  loss " << g.loss << " (reference " << p.ref_loss << ", relative error " << loss_err << ")\n"
            << "  gradient relative error against the reference: " << grad_err << "\n"
            << "  time per gradient: median " << median << " ms, min " << sorted.front() << " ms over "
            << a.repeats << " runs\n"
            << "  NFE forward " << g.nfe_forward << ", backward " << g.nfe_backward << "\n";
}

}  // namespace

void add_bench(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Gradient of a benchmark problem against its reference");
  cmd->add_option("problem", args->file, "Problem file (../shared/bench/B1.h5 ...)")->required();
  cmd->add_option("--method", args->method, "adams or bdf (CVODES adjoint), or dopri5 (backpropagation through Dormand-Prince steps)")->check(CLI::IsMember({"adams", "bdf", "dopri5"}))->capture_default_str();
  cmd->add_option("--linear-solver", args->linear_solver, "dense or gmres (Newton iteration)")
      ->check(CLI::IsMember({"dense", "gmres"}))->capture_default_str();
  cmd->add_option("--rtol", args->rtol, "Relative tolerance")->capture_default_str()->check(real_range(0, 1, true, true));
  cmd->add_option("--atol", args->atol, "Absolute tolerance (default: rtol)")->check(positive_real());
  cmd->add_option("--adjoint-atol", args->adjoint_atol, "Absolute tolerance of the backward problem: 0 (default) atol on the adjoint's own scale, < 0 atol as it is, > 0 this value (the transition form's Psi: 1e-3 rtol unless > 0)")
      ->check(real_range(-std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(), true, true));
  cmd->add_option("--max-order", args->max_order, "Maximum method order (default: the method's, Adams 12, BDF 5)")
      ->check(int_range(0, 12));
  cmd->add_option("--repeats", args->repeats, "Timed gradient evaluations")->capture_default_str()->check(int_range(1, 1000000));
  cmd->add_option("--threads", args->threads, "OpenMP threads over trajectories")->capture_default_str()->check(thread_count());
  cmd->add_option("--mode", args->mode, "per_series, stacked or auto")
      ->check(CLI::IsMember({"per_series", "stacked", "auto", "per-series"}))->capture_default_str();
  cmd->add_option("--stack-size", args->stack_size, "Series per stacked ODE")->capture_default_str()->check(int_range(1, 1000000));
  cmd->add_option("--checkpoint-steps", args->checkpoint_steps, "Steps between adjoint checkpoints")->capture_default_str()
      ->check(int_range(1, 100000000));
  cmd->add_flag("--polynomial", args->polynomial, "Polynomial instead of Hermite adjoint interpolation");
  cmd->add_option("--quadrature", args->quadrature,
                  "auto (gauss_legendre with adams, cvodes with bdf), cvodes, or gauss_legendre (the theta-gradient outside CVODES)")
      ->check(CLI::IsMember({"auto", "cvodes", "gauss_legendre"}))
      ->capture_default_str();
  cmd->add_option("--adjoint-form", args->adjoint_form,
                  "auto (transition for blocks of <= 4 states with adams), restart (restart at every observation) or transition (the adjoint's transition matrix, no restarts)")
      ->check(CLI::IsMember({"auto", "restart", "transition"}))
      ->capture_default_str();
  cmd->add_flag("--no-quad-errcon", args->no_quad_errcon, "Leave the gradient quadrature out of the error test");
  cmd->add_flag("--json", args->json, "Print one JSON line");
  cmd->add_flag("--network-rate", args->network_rate,
                "Only the network: GFLOP/s of its batched rhs and VJP on the problem's stacked shape against Eigen's GEMM");
  cmd->add_option("--horizon-scale", args->horizon_scale,
                  "Stretch the observation times by this factor (memory vs horizon; no reference then)")
      ->capture_default_str()
      ->check(real_range(1, 1e12));
  cmd->add_flag("--hybrid", args->hybrid, "B3: integrate the physics + network Hybrid(LinearDecay(k_diag), network) instead of the network with k_diag");
  cmd->callback([args] { run(*args); });
}

}  // namespace cvnode::app
