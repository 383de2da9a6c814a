// Minibatch training and evaluation of an ImageClassifier on labelled images: shuffled
// minibatches (dropping the last incomplete one, as the paper's loader does), cvnode's
// optimizers and per-epoch learning-rate schedules, optional augmentation, test accuracy after
// every epoch, and the NFE of every step (the paper's Figure 3 c and d).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cvnode/classifier/classifier.h"
#include "cvnode/classifier/idx.h"
#include "cvnode/optimizer.h"
#include "cvnode/schedule.h"

namespace cvnode {

struct ClassifierTrainOptions {
  int epochs = 4;
  int batch_size = 128;
  int eval_batch_size = 500;  // minibatch of the test evaluation (forward only)
  OptimizerOptions optimizer = default_optimizer();
  ScheduleOptions schedule;  // per epoch (default constant)
  std::uint64_t seed = 1;  // parameters and minibatch order
  // Random translations by up to 4 pixels (a 4-padded image cropped back to size, the paper's
  // augmentation). Off by default.
  bool augment = false;
  bool evaluate_every_epoch = true;  // test accuracy after every epoch (else after the last)
  // Regularisers of the training steps (ImageClassifier::set_regularization): STEER's end times
  // and the Hutchinson probes are drawn per step from (seed, step).
  RegularizationOptions regularization;

  static OptimizerOptions default_optimizer();  // Adam, lr 1e-3
  std::string validate() const;
};

struct ClassifierEpoch {
  int epoch = 0;
  double lr = 0;
  double train_loss = 0, train_accuracy = 0;  // over the epoch's minibatches, as trained
  double test_loss = 0, test_accuracy = 0;    // NaN when not evaluated
  double nfe_forward = 0, nfe_backward = 0;   // per minibatch, mean over the epoch
  double penalty = 0;       // the regularisers' terms per minibatch (not in train_loss), mean
  double solver_error = 0;  // sum_s E_s h_s of dopri5's steps per minibatch, mean (0: adjoint)
  double test_nfe = 0;                        // per test minibatch
  double seconds = 0;                         // training time of the epoch (without the test)
  // CPU time of the epoch's training, all threads (on a loaded machine wall time says little)
  double cpu_seconds = 0;
};

struct ClassifierStep {
  long step = 0;
  int epoch = 0;
  double loss = 0;
  long nfe_forward = 0, nfe_backward = 0;
  double penalty = 0, end_time = 0;
};

struct ClassifierEvaluation {
  double loss = 0, accuracy = 0;
  double nfe = 0;  // per minibatch
  int images = 0;
};

struct ClassifierTrainResult {
  Vector theta;
  std::vector<ClassifierEpoch> epochs;
  std::vector<ClassifierStep> steps;
  double train_seconds = 0;      // sum of the epochs' training times
  double train_cpu_seconds = 0;  // and of their CPU times
};

// pixels x count (values in [0, 1]) and labels of images order[begin, end) of `set`.
void image_batch(const ImageSet& set, const std::vector<int>& order, int begin, int end, Matrix& images,
                 std::vector<int>& labels);

ClassifierEvaluation evaluate_classifier(ImageClassifier& model, const Vector& theta, const ImageSet& set,
                                         int batch_size, const SolverOptions* solver = nullptr);

// Trains from `theta` (e.g. model.initial_parameters(seed)); `on_epoch` sees every finished epoch.
ClassifierTrainResult train_classifier(ImageClassifier& model, Vector theta, const ImageSet& train,
                                       const ImageSet& test, const ClassifierTrainOptions& options,
                                       const std::function<void(const ClassifierEpoch&)>& on_epoch = {});

}  // namespace cvnode
