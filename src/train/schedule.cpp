#include "cvnode/schedule.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/names.h"
#include "cvnode/errors.h"

namespace cvnode {

namespace {
const detail::EnumName<ScheduleKind> kScheduleKindNames[] = {
    {ScheduleKind::Constant, "constant"},
    {ScheduleKind::Step, "step"},
    {ScheduleKind::Cosine, "cosine"},
    {ScheduleKind::Plateau, "plateau"}};
}  // namespace

ScheduleKind parse_schedule(const std::string& name) {
  return detail::parse_enum(kScheduleKindNames, name, "schedule");
}

const char* schedule_name(ScheduleKind k) { return detail::enum_name(kScheduleKindNames, k); }

std::string ScheduleOptions::validate() const {
  std::ostringstream o;
  o.precision(17);
  if (step_epochs < 1) o << "schedule.step_epochs = " << step_epochs << " must be >= 1";
  else if (!(gamma > 0 && gamma <= 1)) o << "schedule.gamma = " << gamma << " must lie in (0, 1]";
  else if (!(min_lr >= 0)) o << "schedule.min_lr = " << min_lr << " must be >= 0";
  else if (warmup_epochs < 0) o << "schedule.warmup_epochs = " << warmup_epochs << " must be >= 0";
  else if (phase_warmup_epochs < 0) o << "schedule.phase_warmup_epochs = " << phase_warmup_epochs << " must be >= 0";
  else if (plateau_patience < 1) o << "schedule.plateau_patience = " << plateau_patience << " must be >= 1";
  else if (!(plateau_factor > 0 && plateau_factor < 1)) o << "schedule.plateau_factor = " << plateau_factor << " must lie in (0, 1)";
  else if (!(plateau_threshold >= 0)) o << "schedule.plateau_threshold = " << plateau_threshold << " must be >= 0";
  return o.str();
}

Schedule::Schedule(const ScheduleOptions& options, double base_lr, int total_epochs)
    : o_(options), base_(base_lr), total_(std::max(1, total_epochs)) {
  const std::string why = o_.validate();
  if (!why.empty()) throw OptionsError(why);
}

double Schedule::lr(int epoch) const {
  double r = base_;
  switch (o_.kind) {
    case ScheduleKind::Constant:
    case ScheduleKind::Plateau:
      break;
    case ScheduleKind::Step:
      r = base_ * std::pow(o_.gamma, (epoch - 1) / o_.step_epochs);
      break;
    case ScheduleKind::Cosine: {
      const double frac = std::min(1.0, static_cast<double>(epoch - 1) / std::max(1, total_ - 1));
      r = o_.min_lr + (base_ - o_.min_lr) * 0.5 * (1 + std::cos(M_PI * frac));
      break;
    }
  }
  if (o_.warmup_epochs > 0 && epoch <= o_.warmup_epochs)
    r *= 0.1 + 0.9 * static_cast<double>(epoch - 1) / o_.warmup_epochs;
  return std::max(o_.min_lr * (o_.kind == ScheduleKind::Cosine ? 0.0 : 1.0), r * s_.scale);
}

bool Schedule::observe(double v) {
  if (o_.kind != ScheduleKind::Plateau || !std::isfinite(v)) return false;
  if (v < s_.best * (1 - o_.plateau_threshold)) {
    s_.best = v;
    s_.bad = 0;
    return false;
  }
  if (++s_.bad >= o_.plateau_patience) {
    s_.scale *= o_.plateau_factor;
    s_.bad = 0;
    return true;
  }
  return false;
}

}  // namespace cvnode
