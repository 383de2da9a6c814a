#include "cvnode/problem.h"

#include "cvnode/errors.h"

namespace cvnode {

Problem::Problem(std::vector<Trajectory> series, std::shared_ptr<const Loss> loss)
    : series_(std::move(series)), loss_(std::move(loss)) {
  if (!loss_) throw OptionsError("a problem needs a loss");
  phi_ = loss_->initial_parameters();
  for (const Trajectory& tr : series_) entries_ += loss_->entries(tr);
  if (loss_->reduction() == LossReduction::Mean) normalization_ = entries_ > 0 ? 1.0 / static_cast<double>(entries_) : 0.0;
}

Problem& Problem::add_running_cost(std::shared_ptr<const RunningCost> cost) {
  if (!cost) throw OptionsError("add_running_cost: null running cost");
  costs_.push_back(std::move(cost));
  return *this;
}

Problem& Problem::set_loss_parameters(const Vector& phi) {
  if (phi.size() != loss_->param_size())
    throw OptionsError("the loss " + loss_->name() + " has " + std::to_string(loss_->param_size()) +
                       " parameters, got " + std::to_string(phi.size()));
  if (!phi.allFinite()) throw OptionsError("the loss parameters are not finite");
  phi_ = phi;
  return *this;
}

std::string Problem::validate(int n, int s) const {
  const int first = s < 0 ? 0 : s, last = s < 0 ? size() - 1 : s;
  if (s >= size()) return "series " + std::to_string(s) + " of a problem with " + std::to_string(size());
  for (int i = first; i <= last; ++i) {
    const Trajectory& tr = series_[static_cast<std::size_t>(i)];
    std::string why = tr.validate(n);
    if (why.empty()) why = loss_->validate(original_index(i), tr, n);
    if (!why.empty()) return size() > 1 ? "series " + std::to_string(i) + ": " + why : why;
  }
  return {};
}

void Problem::check(int n, int s) const {
  if (std::string why = validate(n, s); !why.empty()) throw OptionsError(why);
}

ObservationTerms Problem::observe(int s, const Matrix& states) const {
  const Trajectory& tr = series(s);
  const Eigen::Index T = states.rows(), n = states.cols();
  ObservationTerms out;
  out.jumps.setZero(T, n);
  out.phi.setZero(loss_->param_size());
  Vector z(n), dz(n);
  for (Eigen::Index k = 0; k < T; ++k) {
    z = states.row(k).transpose();
    out.loss += loss_->term({original_index(s), k, tr}, z, phi_, dz, out.phi);
    out.jumps.row(k) = normalization_ * dz.transpose();
  }
  out.loss *= normalization_;
  out.phi *= normalization_;
  return out;
}

Matrix Problem::predict(int s, const Matrix& states) const {
  const Eigen::Index m = series(s).values.cols();
  Matrix y(states.rows(), m);
  Vector z(states.cols()), row(m);
  for (Eigen::Index k = 0; k < states.rows(); ++k) {
    z = states.row(k).transpose();
    loss_->predict(z, phi_, row);
    y.row(k) = row.transpose();
  }
  return y;
}

}  // namespace cvnode

namespace cvnode {

Problem Problem::select(const std::vector<int>& series) const {
  std::vector<Trajectory> chosen;
  std::vector<int> index;
  for (int s : series) {
    if (s < 0 || s >= size())
      throw OptionsError("select: series " + std::to_string(s) + " of a problem with " + std::to_string(size()));
    chosen.push_back(series_[static_cast<std::size_t>(s)]);
    index.push_back(original_index(s));
  }
  Problem p(std::move(chosen), loss_);
  p.phi_ = phi_;
  p.costs_ = costs_;
  p.entries_ = entries_;  // the whole problem's: every term keeps its normalisation
  p.normalization_ = normalization_;
  p.index_ = std::move(index);
  return p;
}

Problem Problem::slice(int begin, int end) const {
  if (begin < 0 || end > size() || begin > end)
    throw OptionsError("slice [" + std::to_string(begin) + ", " + std::to_string(end) + ") of a problem with " +
                       std::to_string(size()) + " series");
  std::vector<int> range;
  for (int s = begin; s < end; ++s) range.push_back(s);
  return select(range);
}

}  // namespace cvnode
