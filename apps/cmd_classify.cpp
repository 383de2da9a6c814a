// `cvnode classify`: the paper's image classifiers (ODE-Net, ResNet, RK-Net) on Fashion-MNIST.
//   train      train one model, write its checkpoint and metrics, print one JSON line
//   tolerance  forward NFE, numerical error and accuracy of a trained ODE-Net per tolerance
//   memory     peak memory of one training step as the integration length or depth grows
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>
#include <omp.h>

#include "commands.h"
#include "cvnode/checkpoint.h"
#include "models/classifier/train.h"
#include "cvnode/errors.h"
#include "data/atomic_file.h"

namespace cvnode::app {

namespace {

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;  // kilobytes on Linux
}

// The 1-minute load average at the end of a run: timings on a shared machine need it.
double load_average() {
  double l[1] = {0};
  return getloadavg(l, 1) == 1 ? l[0] : -1;
}

double current_rss_mb() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1048576.0);
}

struct ModelArgs {
  std::string kind = "odenet";
  std::string method = "adams";
  double tol = 1e-3;
  int channels = 32;
  int groups = -1;  // -1: min(32, channels)
  bool no_time = false;
  std::string activation = "relu";
  int blocks = 6;
  int pool_grid = 1;
  int rk_steps = 2;
  double horizon = 1;
  int checkpoint_steps = 20;
  int threads = 0;
  int chunk = 8;

  void add(CLI::App* c) {
    c->add_option("--model", kind, "odenet | resnet | rknet")->check(CLI::IsMember({"odenet", "resnet", "rknet"}));
    c->add_option("--method", method, "odenet's engine: adams or bdf (CVODES adjoint), dopri5 (backprop)");
    c->add_option("--tol", tol, "odenet: rtol = atol of the block's solver");
    c->add_option("--channels", channels, "feature maps of every layer");
    c->add_option("--groups", groups, "group-norm groups (0 = none; default min(32, channels))");
    c->add_flag("--no-time-channel", no_time, "odenet/rknet blocks without the time channel");
    c->add_option("--activation", activation, "the block's activation: relu (the paper), softplus, tanh, ...");
    c->add_option("--blocks", blocks, "resnet: residual layers");
    c->add_option("--pool-grid", pool_grid, "the head averages over pool_grid^2 cells (1 = global average pooling)");
    c->add_option("--rk-steps", rk_steps, "rknet: fixed Dormand-Prince steps");
    c->add_option("--horizon", horizon, "odenet/rknet: integrate the block over [0, horizon]");
    c->add_option("--checkpoint-steps", checkpoint_steps, "odenet adjoint: steps between checkpoints");
    c->add_option("--threads", threads, "OpenMP threads (0 = all; results do not depend on it)");
    c->add_option("--chunk", chunk, "images per matrix product");
  }
  ClassifierSpec spec() const {
    ClassifierSpec s;
    s.kind = parse_classifier_kind(kind);
    s.channels = channels;
    s.groups = groups >= 0 ? groups : std::min(32, channels);
    s.time_channel = !no_time;
    s.activation = parse_activation(activation);
    s.resnet_blocks = blocks;
    s.pool_grid = pool_grid;
    s.rk_steps = rk_steps;
    s.horizon = horizon;
    s.solver.method = method;
    s.solver.rtol = s.solver.atol = tol;
    // A CVODES option: the dopri5 engine refuses any that is set.
    s.solver.cvodes.checkpoint_steps = method == "dopri5" ? CvodesOptions{}.checkpoint_steps : checkpoint_steps;
    s.threads = threads;
    s.chunk = chunk;
    return s;
  }
};

std::string num(double v) {
  std::ostringstream o;
  o << std::setprecision(10) << v;
  return o.str();
}


// ---- train ----

struct TrainArgs {
  ModelArgs model;
  int epochs = 4;
  int batch = 128;
  double lr = 1e-3;
  std::string optimizer = "adam";
  std::string schedule = "step";
  int decay_epochs = 0;  // step schedule: decay after this many epochs (0 = before the last epoch)
  double gamma = 0.1;
  int train_images = 0, test_images = 0;
  std::uint64_t seed = 1;
  bool augment = false;
  std::string data = kFashionMnistDir;
  std::string out;
  bool json = false;
  // [regularization] of a fit, by the same names (docs/regularization.md)
  RegularizationOptions reg;
  std::string jacobian_estimator = "hutchinson";
};

void run_train(const TrainArgs& a) {
  const ClassifierSpec spec = a.model.spec();
  ImageClassifier model(spec);
  ClassifierTrainOptions o;
  o.epochs = a.epochs;
  o.batch_size = a.batch;
  o.optimizer.kind = parse_optimizer(a.optimizer);
  o.optimizer.lr = a.lr;
  o.schedule.kind = parse_schedule(a.schedule);
  o.schedule.step_epochs = a.decay_epochs > 0 ? a.decay_epochs : std::max(1, a.epochs - 1);
  o.schedule.gamma = a.gamma;
  o.seed = a.seed;
  o.augment = a.augment;
  o.regularization = a.reg;
  o.regularization.jacobian_estimator = parse_trace_estimator(a.jacobian_estimator);
  model.set_regularization(o.regularization);  // refusals before the data is read
  const ImageSet train = load_fashion_mnist("train", a.data).head(a.train_images);
  const ImageSet test = load_fashion_mnist("test", a.data).head(a.test_images);
  if (!a.out.empty()) std::filesystem::create_directories(a.out);
  std::cerr << "classify: " << classifier_kind_name(spec.kind) << ", " << model.param_size() << " parameters, "
            << train.size() << " training and " << test.size() << " test images\n";
  std::ostringstream epochs_csv;
  epochs_csv << "epoch,lr,train_loss,train_accuracy,test_loss,test_accuracy,nfe_forward,nfe_backward,test_nfe,seconds,"
                "cpu_seconds,penalty,solver_error\n";
  const ClassifierTrainResult r =
      train_classifier(model, model.initial_parameters(a.seed), train, test, o, [&](const ClassifierEpoch& e) {
        std::cerr << "epoch " << e.epoch << ": lr " << e.lr << ", train loss " << e.train_loss << ", train acc "
                  << e.train_accuracy << ", test acc " << e.test_accuracy << ", NFE f/b " << e.nfe_forward << "/"
                  << e.nfe_backward << ", " << e.seconds << " s (" << e.cpu_seconds << " s CPU)\n";
        epochs_csv << e.epoch << "," << num(e.lr) << "," << num(e.train_loss) << "," << num(e.train_accuracy) << ","
                   << num(e.test_loss) << "," << num(e.test_accuracy) << "," << num(e.nfe_forward) << ","
                   << num(e.nfe_backward) << "," << num(e.test_nfe) << "," << num(e.seconds) << "," << num(e.cpu_seconds)
                   << "," << num(e.penalty) << "," << num(e.solver_error) << "\n";
      });
  const ClassifierEpoch& last = r.epochs.back();
  if (!a.out.empty()) {
    std::ostringstream steps;
    steps << "step,epoch,loss,nfe_forward,nfe_backward,penalty,end_time\n";
    for (const ClassifierStep& s : r.steps)
      steps << s.step << "," << s.epoch << "," << num(s.loss) << "," << s.nfe_forward << "," << s.nfe_backward << ","
            << num(s.penalty) << "," << num(s.end_time) << "\n";
    io::write_text(a.out + "/steps.csv", steps.str());
    io::write_text(a.out + "/epochs.csv", epochs_csv.str());
    Checkpoint c;
    c.model_spec = spec.to_json();
    c.parameters = r.theta;
    c.epoch = a.epochs;
    c.step = static_cast<std::int64_t>(r.steps.size());
    for (const ClassifierEpoch& e : r.epochs) {
      c.metrics["epoch"].push_back(e.epoch);
      c.metrics["test_accuracy"].push_back(e.test_accuracy);
      c.metrics["nfe_forward"].push_back(e.nfe_forward);
      c.metrics["nfe_backward"].push_back(e.nfe_backward);
    }
    c.write(a.out + "/model.h5");
  }
  nlohmann::json j;
  j["model"] = classifier_kind_name(spec.kind);
  if (spec.kind == ClassifierKind::OdeNet) j["method"] = spec.solver.method;
  j["test_error"] = 1 - last.test_accuracy;
  j["test_accuracy"] = last.test_accuracy;
  j["parameters"] = model.param_size();
  j["peak_memory_mb"] = peak_rss_mb();
  j["train_seconds"] = r.train_seconds;
  j["train_cpu_seconds"] = r.train_cpu_seconds;
  j["threads"] = spec.threads > 0 ? spec.threads : omp_get_max_threads();
  j["load_average"] = load_average();
  j["epochs"] = a.epochs;
  j["nfe_forward"] = last.nfe_forward;
  j["nfe_backward"] = last.nfe_backward;
  j["test_nfe"] = last.test_nfe;
  j["penalty"] = last.penalty;
  j["solver_error"] = last.solver_error;
  j["regularization"] = {{"kinetic_weight", a.reg.kinetic_weight}, {"jacobian_weight", a.reg.jacobian_weight},
                         {"jacobian_probes", a.reg.jacobian_probes}, {"steer", a.reg.steer},
                         {"error_weight", a.reg.error_weight}};
  j["channels"] = spec.channels;
  j["train_images"] = train.size();
  j["test_images"] = test.size();
  if (a.json) std::cout << j.dump() << std::endl;
  else std::cout << j.dump(2) << std::endl;
}

// ---- tolerance (Figure 3 a and b) ----

struct ToleranceArgs {
  std::string run;
  std::vector<double> tols = {1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 1e-5};
  int images = 1000;
  int batch = 500;
  std::string method = "";
  std::string data = kFashionMnistDir;
  bool csv = false;
};

void run_tolerance(const ToleranceArgs& a) {
  const Checkpoint c = Checkpoint::read(a.run + "/model.h5");
  ClassifierSpec spec = ClassifierSpec::from_json(c.model_spec);
  if (spec.kind == ClassifierKind::ResNet) throw OptionsError(a.run + ": a resnet has no solver tolerance");
  spec.kind = ClassifierKind::OdeNet;  // an rknet's block can be solved adaptively too
  ImageClassifier model(spec);
  const ImageSet test = load_fashion_mnist("test", a.data).head(a.images);
  std::vector<int> order(test.size());
  for (int i = 0; i < test.size(); ++i) order[i] = i;
  // The reference z(T): the same block at rtol = atol = 1e-9.
  SolverOptions ref = spec.solver;
  if (!a.method.empty()) {
    ref.method = a.method;
    if (a.method == "dopri5") ref.cvodes = CvodesOptions{};  // the dopri5 engine refuses CVODES options
  }
  ref.rtol = ref.atol = 1e-9;
  ref.max_steps = 1000000;
  // The reference is solved once per minibatch, not once per tolerance: it costs the most.
  std::vector<Matrix> z1_refs;
  {
    Matrix X, z0;
    std::vector<int> y;
    for (int b = 0; b < test.size(); b += a.batch) {
      image_batch(test, order, b, std::min(test.size(), b + a.batch), X, y);
      z1_refs.emplace_back();
      model.features(c.parameters, X, z0, z1_refs.back(), &ref);
    }
  }
  if (a.csv) std::cout << "tol,method,nfe_forward,relative_error,test_accuracy,images\n";
  for (double tol : a.tols) {
    SolverOptions o = ref;
    o.rtol = o.atol = tol;
    double err2 = 0, ref2 = 0, nfe = 0;
    long correct = 0, batches = 0;
    Matrix X, z0, z1;
    std::vector<int> y;
    for (int b = 0; b < test.size(); b += a.batch) {
      const int end = std::min(test.size(), b + a.batch);
      image_batch(test, order, b, end, X, y);
      long n = 0;
      const Matrix& z1_ref = z1_refs[batches];
      model.features(c.parameters, X, z0, z1, &o, &n);
      err2 += (z1 - z1_ref).squaredNorm();
      ref2 += z1_ref.squaredNorm();
      nfe += static_cast<double>(n);
      correct += model.evaluate(c.parameters, X, y, &o).correct;
      ++batches;
    }
    nlohmann::json j;
    j["tol"] = tol;
    j["method"] = o.method;
    j["nfe_forward"] = nfe / batches;
    j["relative_error"] = std::sqrt(err2 / ref2);
    j["test_accuracy"] = static_cast<double>(correct) / test.size();
    j["images"] = test.size();
    if (a.csv)
      std::cout << num(tol) << "," << o.method << "," << num(nfe / batches) << ","
                << num(std::sqrt(err2 / ref2)) << "," << num(static_cast<double>(correct) / test.size()) << ","
                << test.size() << std::endl;
    else
      std::cout << j.dump() << std::endl;
  }
}

// ---- memory (Table 1's memory column, and its growth with length or depth) ----

struct MemoryArgs {
  ModelArgs model;
  int batch = 128;
  int steps = 2;
  std::string data = kFashionMnistDir;
};

void run_memory(const MemoryArgs& a) {
  const ClassifierSpec spec = a.model.spec();
  ImageClassifier model(spec);
  const ImageSet train = load_fashion_mnist("test", a.data).head(a.batch);
  std::vector<int> order(train.size());
  for (int i = 0; i < train.size(); ++i) order[i] = i;
  Matrix X;
  std::vector<int> y;
  image_batch(train, order, 0, train.size(), X, y);
  const Vector theta = model.initial_parameters(1);
  const double before = current_rss_mb();
  ClassifierResult r;
  for (int s = 0; s < a.steps; ++s) r = model.gradient(theta, X, y);
  nlohmann::json j;
  j["model"] = classifier_kind_name(spec.kind);
  if (spec.kind != ClassifierKind::ResNet) j["method"] = spec.kind == ClassifierKind::RkNet ? std::string("dopri5") : spec.solver.method;
  j["horizon"] = spec.horizon;
  j["blocks"] = spec.kind == ClassifierKind::ResNet ? spec.resnet_blocks : 0;
  j["batch"] = a.batch;
  j["channels"] = spec.channels;
  j["parameters"] = model.param_size();
  j["nfe_forward"] = r.nfe_forward;
  j["nfe_backward"] = r.nfe_backward;
  j["checkpoints"] = r.forward.checkpoints;
  j["rss_before_mb"] = before;
  j["peak_rss_mb"] = peak_rss_mb();
  j["step_memory_mb"] = peak_rss_mb() - before;
  std::cout << j.dump() << std::endl;
}

}  // namespace

void add_classify(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("classify", "The paper's image classifiers (ODE-Net, ResNet, RK-Net) on Fashion-MNIST");
  cmd->require_subcommand(1);

  auto ta = std::make_shared<TrainArgs>();
  CLI::App* t = cmd->add_subcommand("train", "Train one model; print a JSON line (test error, parameters, memory, time, NFE)");
  ta->model.add(t);
  t->add_option("--epochs", ta->epochs);
  t->add_option("--batch", ta->batch, "minibatch size");
  t->add_option("--lr", ta->lr, "learning rate");
  t->add_option("--optimizer", ta->optimizer, "adam | adamw | sgd");
  t->add_option("--schedule", ta->schedule, "constant | step | cosine (per epoch)");
  t->add_option("--decay-epochs", ta->decay_epochs, "step schedule: epochs between decays (default: epochs - 1)");
  t->add_option("--gamma", ta->gamma, "step schedule: factor");
  t->add_option("--train-images", ta->train_images, "use the first N training images (0 = all)");
  t->add_option("--test-images", ta->test_images, "use the first N test images (0 = all)");
  t->add_option("--seed", ta->seed);
  t->add_flag("--augment", ta->augment, "random shifts by up to 4 pixels");
  t->add_option("--data", ta->data, "folder of the Fashion-MNIST .gz files");
  t->add_option("--out", ta->out, "folder for model.h5, epochs.csv, steps.csv");
  t->add_flag("--json", ta->json, "one JSON line instead of an indented object");
  // The [regularization] keys of a fit (docs/regularization.md), per image.
  t->add_option("--kinetic-weight", ta->reg.kinetic_weight, "regularization.kinetic_weight: lambda int |f|^2 dt");
  t->add_option("--jacobian-weight", ta->reg.jacobian_weight,
                "regularization.jacobian_weight: lambda int |df/dz|_F^2 dt (Hutchinson, central-difference JVPs)");
  t->add_option("--jacobian-estimator", ta->jacobian_estimator, "regularization.jacobian_estimator: hutchinson");
  t->add_option("--jacobian-probes", ta->reg.jacobian_probes, "regularization.jacobian_probes: Rademacher probes per step");
  t->add_option("--steer", ta->reg.steer, "regularization.steer: end time drawn from U(horizon - b, horizon + b) per step");
  t->add_option("--error-weight", ta->reg.error_weight,
                "regularization.error_weight: lambda sum_s E_s h_s of dopri5's steps (--method dopri5 or rknet)");
  t->callback([ta] { run_train(*ta); });

  auto oa = std::make_shared<ToleranceArgs>();
  CLI::App* o = cmd->add_subcommand("tolerance", "NFE, error of z(T) and accuracy per tolerance (JSON lines)");
  o->add_option("run", oa->run, "folder of a trained odenet or rknet (model.h5)")->required();
  o->add_option("--tols", oa->tols, "tolerances (rtol = atol)")->delimiter(',');
  o->add_option("--images", oa->images, "test images");
  o->add_option("--batch", oa->batch, "images per solve");
  o->add_option("--method", oa->method, "engine (default: the model's)");
  o->add_option("--data", oa->data);
  o->add_flag("--csv", oa->csv, "CSV rows (with a header) instead of JSON lines");
  o->callback([oa] { run_tolerance(*oa); });

  auto ma = std::make_shared<MemoryArgs>();
  CLI::App* m = cmd->add_subcommand("memory", "Peak memory of training steps (one JSON line; run each size in its own process)");
  ma->model.add(m);
  m->add_option("--batch", ma->batch, "images per step");
  m->add_option("--steps", ma->steps, "training steps (gradients) to take");
  m->add_option("--data", ma->data);
  m->callback([ma] { run_memory(*ma); });
}

}  // namespace cvnode::app
