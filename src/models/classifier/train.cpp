#include "models/classifier/train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include <sys/resource.h>

#include "cvnode/errors.h"
#include "core/random.h"

namespace cvnode {

OptimizerOptions ClassifierTrainOptions::default_optimizer() {
  OptimizerOptions o;
  o.kind = OptimizerKind::Adam;
  o.lr = 1e-3;
  return o;
}

std::string ClassifierTrainOptions::validate() const {
  if (epochs < 1) return "train: epochs must be >= 1, got " + std::to_string(epochs);
  if (batch_size < 1) return "train: batch_size must be >= 1, got " + std::to_string(batch_size);
  if (eval_batch_size < 1) return "train: eval_batch_size must be >= 1, got " + std::to_string(eval_batch_size);
  if (std::string why = optimizer.validate(); !why.empty()) return "train: " + why;
  if (std::string why = schedule.validate(); !why.empty()) return "train: " + why;
  return {};
}

namespace {
// Image `index` of the set, shifted by (dy, dx) with zeros coming in, into column `col`.
void put_image(const ImageSet& set, int index, int dy, int dx, double* col) {
  const int R = set.rows, C = set.cols;
  const std::uint8_t* px = set.pixels.data() + static_cast<long>(index) * R * C;
  for (int y = 0; y < R; ++y)
    for (int x = 0; x < C; ++x) {
      const int sy = y - dy, sx = x - dx;
      col[y * C + x] = (sy >= 0 && sy < R && sx >= 0 && sx < C) ? px[sy * C + sx] / 255.0 : 0.0;
    }
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// User and system CPU time of the process so far, all threads.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}
}  // namespace

void image_batch(const ImageSet& set, const std::vector<int>& order, int begin, int end, Matrix& images,
                 std::vector<int>& labels) {
  images.resize(set.pixels_per_image(), end - begin);
  labels.resize(end - begin);
  for (int i = begin; i < end; ++i) {
    put_image(set, order[i], 0, 0, images.col(i - begin).data());
    labels[i - begin] = set.labels[order[i]];
  }
}

ClassifierEvaluation evaluate_classifier(ImageClassifier& model, const Vector& theta, const ImageSet& set,
                                         int batch_size, const SolverOptions* solver) {
  ClassifierEvaluation e;
  std::vector<int> order(set.size());
  std::iota(order.begin(), order.end(), 0);
  Matrix X;
  std::vector<int> y;
  long correct = 0, batches = 0;
  double loss = 0, nfe = 0;
  for (int b = 0; b < set.size(); b += batch_size) {
    const int end = std::min(set.size(), b + batch_size);
    image_batch(set, order, b, end, X, y);
    const ClassifierResult r = model.evaluate(theta, X, y, solver);
    loss += r.loss * (end - b);
    correct += r.correct;
    nfe += static_cast<double>(r.nfe_forward);
    ++batches;
  }
  e.images = set.size();
  e.loss = set.size() ? loss / set.size() : 0;
  e.accuracy = set.size() ? static_cast<double>(correct) / set.size() : 0;
  e.nfe = batches ? nfe / batches : 0;
  return e;
}

ClassifierTrainResult train_classifier(ImageClassifier& model, Vector theta, const ImageSet& train,
                                       const ImageSet& test, const ClassifierTrainOptions& o,
                                       const std::function<void(const ClassifierEpoch&)>& on_epoch) {
  if (std::string why = o.validate(); !why.empty()) throw OptionsError(why);
  if (train.size() < o.batch_size)
    throw OptionsError("train: " + std::to_string(train.size()) + " training images, fewer than one minibatch of " +
                       std::to_string(o.batch_size));
  const int P = model.param_size();
  if (theta.size() != P) throw OptionsError("train: theta has " + std::to_string(theta.size()) + " entries, the model " + std::to_string(P));
  model.set_regularization(o.regularization);
  Optimizer opt(o.optimizer, P);
  Schedule sched(o.schedule, o.optimizer.lr, o.epochs);
  const Vector ones = Vector::Ones(P);
  ClassifierTrainResult out;
  const int batches = train.size() / o.batch_size;  // the last incomplete minibatch is dropped
  std::vector<int> order(train.size());
  Matrix X;
  std::vector<int> y;
  long step = 0;
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto t_start = std::chrono::steady_clock::now();
    const double cpu_start = cpu_seconds();
    ClassifierEpoch ep;
    ep.epoch = epoch;
    ep.lr = sched.lr(epoch);
    // The epoch's order and shifts from (seed, epoch) alone.
    detail::Rng rng(o.seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(epoch));
    std::iota(order.begin(), order.end(), 0);
    for (int i = train.size() - 1; i > 0; --i) std::swap(order[i], order[rng.next() % static_cast<std::uint64_t>(i + 1)]);
    double loss_sum = 0, nfe_f = 0, nfe_b = 0, penalty = 0, solver_error = 0;
    long correct = 0;
    for (int b = 0; b < batches; ++b) {
      const int begin = b * o.batch_size;
      if (o.augment) {
        X.resize(train.pixels_per_image(), o.batch_size);
        y.resize(o.batch_size);
        for (int i = 0; i < o.batch_size; ++i) {
          const int dy = static_cast<int>(rng.next() % 9) - 4, dx = static_cast<int>(rng.next() % 9) - 4;
          put_image(train, order[begin + i], dy, dx, X.col(i).data());
          y[i] = train.labels[order[begin + i]];
        }
      } else {
        image_batch(train, order, begin, begin + o.batch_size, X, y);
      }
      ClassifierResult r =
          model.gradient(theta, X, y, o.seed * 0xD1B54A32D192ED03ULL + static_cast<std::uint64_t>(step + 1));
      if (!std::isfinite(r.loss) || !r.gradient.allFinite())
        throw SolverError("classifier training", 0, "non-finite", epoch,
                          "the loss or its gradient was not finite at step " + std::to_string(step + 1));
      clip_gradient(r.gradient, o.optimizer.clip_norm);
      opt.step(theta, r.gradient, ep.lr, ones, ones);
      ++step;
      loss_sum += r.loss;
      correct += r.correct;
      nfe_f += static_cast<double>(r.nfe_forward);
      nfe_b += static_cast<double>(r.nfe_backward);
      penalty += r.penalty;
      solver_error += r.solver_error;
      out.steps.push_back({step, epoch, r.loss, r.nfe_forward, r.nfe_backward, r.penalty, r.end_time});
    }
    ep.seconds = seconds_since(t_start);
    ep.cpu_seconds = cpu_seconds() - cpu_start;
    ep.train_loss = loss_sum / batches;
    ep.train_accuracy = static_cast<double>(correct) / (static_cast<double>(batches) * o.batch_size);
    ep.nfe_forward = nfe_f / batches;
    ep.nfe_backward = nfe_b / batches;
    ep.penalty = penalty / batches;
    ep.solver_error = solver_error / batches;
    ep.test_loss = ep.test_accuracy = ep.test_nfe = std::numeric_limits<double>::quiet_NaN();
    if ((o.evaluate_every_epoch || epoch == o.epochs) && test.size() > 0) {
      const ClassifierEvaluation e = evaluate_classifier(model, theta, test, o.eval_batch_size);
      ep.test_loss = e.loss;
      ep.test_accuracy = e.accuracy;
      ep.test_nfe = e.nfe;
    }
    out.train_seconds += ep.seconds;
    out.train_cpu_seconds += ep.cpu_seconds;
    out.epochs.push_back(ep);
    if (on_epoch) on_epoch(ep);
  }
  out.theta = std::move(theta);
  return out;
}

}  // namespace cvnode
