// Learning-rate schedules: constant, step decay, cosine annealing and reduce-on-plateau, plus the
// extra reductions the trainer applies after repeated solver failures. lr(epoch) is a pure
// function of the epoch and a small state (scale, best value, bad epochs) that checkpoints store.
#pragma once

#include <limits>
#include <string>

namespace cvnode {

enum class ScheduleKind { Constant, Step, Cosine, Plateau };
ScheduleKind parse_schedule(const std::string& name);  // constant|step|cosine|plateau
const char* schedule_name(ScheduleKind k);

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::Constant;
  int step_epochs = 100;      // step: multiply by gamma every step_epochs epochs
  double gamma = 0.5;         // step: factor
  double min_lr = 0;          // cosine: floor reached at the last epoch; all kinds: lower bound
  int warmup_epochs = 0;      // linear warm-up from lr/10 over these first epochs (0 = none)
  // The same warm-up over the first epochs after each switch of a window curriculum (0 = none);
  // the Trainer applies it (Trainer::set_phase_start).
  int phase_warmup_epochs = 0;
  int plateau_patience = 10;  // plateau: validations without improvement before reducing
  double plateau_factor = 0.5;
  double plateau_threshold = 1e-4;  // relative improvement that counts

  std::string validate() const;
};

class Schedule {
 public:
  Schedule(const ScheduleOptions& options, double base_lr, int total_epochs);
  // Learning rate for epoch (1-based).
  double lr(int epoch) const;
  // Plateau bookkeeping after a validation; returns true when the rate was reduced.
  bool observe(double validation_loss);
  // Multiplies every later rate by factor (solver-failure back-off).
  void reduce(double factor) { s_.scale *= factor; }

  struct State {
    double scale = 1;
    double best = std::numeric_limits<double>::infinity();
    int bad = 0;
  };
  const State& state() const { return s_; }
  void set_state(const State& s) { s_ = s; }
  double scale() const { return s_.scale; }

 private:
  ScheduleOptions o_;
  double base_;
  int total_;
  State s_;
};

}  // namespace cvnode
