#include "cvnode/mass_action.h"

#include <cctype>
#include <sstream>

#include "cvnode/errors.h"

namespace cvnode {

namespace {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// Parses one side ("2 A + B", "", "0") into counts per species, adding to row r of M.
void parse_side(const std::string& side, const std::vector<std::string>& species, const std::string& reaction,
                Eigen::MatrixXi& M, int r) {
  const std::string s = trim(side);
  if (s.empty() || s == "0") return;
  std::stringstream ss(s);
  std::string term;
  while (std::getline(ss, term, '+')) {
    std::string t = trim(term);
    if (t.empty()) throw OptionsError("reaction '" + reaction + "' has an empty term between '+' signs");
    int coeff = 1;
    size_t i = 0;
    while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) ++i;
    if (i > 0) {
      coeff = std::stoi(t.substr(0, i));
      while (i < t.size() && (std::isspace(static_cast<unsigned char>(t[i])) || t[i] == '*')) ++i;
    }
    const std::string name = trim(t.substr(i));
    int idx = -1;
    for (size_t j = 0; j < species.size(); ++j)
      if (species[j] == name) idx = static_cast<int>(j);
    if (idx < 0) throw OptionsError("reaction '" + reaction + "' names unknown species '" + name + "'");
    M(r, idx) += coeff;
  }
}

}  // namespace

MassActionSpec MassActionSpec::parse(std::vector<std::string> species, const std::vector<std::string>& reactions) {
  MassActionSpec spec;
  const int n = static_cast<int>(species.size()), R = static_cast<int>(reactions.size());
  spec.reactants = Eigen::MatrixXi::Zero(R, n);
  spec.products = Eigen::MatrixXi::Zero(R, n);
  for (int r = 0; r < R; ++r) {
    const std::string& text = reactions[r];
    const size_t arrow = text.find("->");
    if (arrow == std::string::npos || text.find("->", arrow + 2) != std::string::npos)
      throw OptionsError("reaction '" + text + "' needs exactly one '->'");
    parse_side(text.substr(0, arrow), species, text, spec.reactants, r);
    parse_side(text.substr(arrow + 2), species, text, spec.products, r);
  }
  spec.species = std::move(species);
  if (std::string why = spec.validate(); !why.empty()) throw OptionsError(why);
  return spec;
}

std::string MassActionSpec::validate() const {
  if (reactants.cols() < 1) return "a mass-action network needs at least one species";
  if (reactants.rows() != products.rows() || reactants.cols() != products.cols())
    return "reactant and product matrices differ in shape: " + std::to_string(reactants.rows()) + "x" +
           std::to_string(reactants.cols()) + " vs " + std::to_string(products.rows()) + "x" +
           std::to_string(products.cols());
  if (!species.empty() && static_cast<int>(species.size()) != reactants.cols())
    return std::to_string(species.size()) + " species names for " + std::to_string(reactants.cols()) + " species";
  if (reactants.size() > 0 && (reactants.minCoeff() < 0 || products.minCoeff() < 0))
    return "stoichiometric coefficients must be >= 0";
  return {};
}

std::string MassActionSpec::reaction_string(int r) const {
  auto side = [&](const Eigen::MatrixXi& M) {
    std::string s;
    for (int i = 0; i < M.cols(); ++i) {
      if (M(r, i) == 0) continue;
      if (!s.empty()) s += " + ";
      if (M(r, i) != 1) s += std::to_string(M(r, i)) + " ";
      s += species.empty() ? "z" + std::to_string(i) : species[i];
    }
    return s.empty() ? std::string("0") : s;
  };
  return side(reactants) + " -> " + side(products);
}

MassAction::MassAction(MassActionSpec spec) : spec_(std::move(spec)) {
  if (std::string why = spec_.validate(); !why.empty()) throw OptionsError(why);
  net_t_ = (spec_.products - spec_.reactants).cast<double>().transpose();
  term_begin_.push_back(0);
  for (int r = 0; r < spec_.reaction_count(); ++r) {
    for (int i = 0; i < spec_.species_count(); ++i)
      if (spec_.reactants(r, i) > 0) terms_.push_back({i, spec_.reactants(r, i)});
    term_begin_.push_back(static_cast<int>(terms_.size()));
  }
}

// Workspace: one reaction-sized vector (rates, or N a) plus a reactions x species buffer for
// the rate Jacobian dv/dz.
int MassAction::workspace_size() const {
  return spec_.reaction_count() * (1 + spec_.species_count());
}

namespace {
double ipow(double x, int k) {
  double r = 1;
  for (int i = 0; i < k; ++i) r *= x;
  return r;
}
}  // namespace

double MassAction::monomial(int r, ConstVectorRef z) const {
  double m = 1;
  for (int e = term_begin_[r]; e < term_begin_[r + 1]; ++e) m *= ipow(z[terms_[e].species], terms_[e].order);
  return m;
}

double MassAction::monomial_derivative(int r, int e, ConstVectorRef z) const {
  double d = terms_[e].order * ipow(z[terms_[e].species], terms_[e].order - 1);
  for (int o = term_begin_[r]; o < term_begin_[r + 1]; ++o)
    if (o != e) d *= ipow(z[terms_[o].species], terms_[o].order);
  return d;
}

void MassAction::rhs(double, ConstVectorRef z, ConstVectorRef k, VectorRef f, VectorRef work) const {
  const int R = spec_.reaction_count();
  auto v = work.head(R);
  for (int r = 0; r < R; ++r) v[r] = k[r] * monomial(r, z);
  f.noalias() = net_t_ * v;
}

void MassAction::vjp(double, ConstVectorRef z, ConstVectorRef k, ConstVectorRef a, VectorRef a_dfdz,
                     VectorRef a_dfdk, VectorRef work) const {
  const int R = spec_.reaction_count();
  // f = N^T v(z, k) with N = P - R, so a^T df = (N a)^T dv: w = N a weights each reaction.
  auto w = work.head(R);
  w.noalias() = net_t_.transpose() * a;
  a_dfdz.setZero();
  for (int r = 0; r < R; ++r)
    for (int e = term_begin_[r]; e < term_begin_[r + 1]; ++e)
      a_dfdz[terms_[e].species] += w[r] * k[r] * monomial_derivative(r, e, z);
  if (a_dfdk.size() > 0)
    for (int r = 0; r < R; ++r) a_dfdk[r] = w[r] * monomial(r, z);
}

void MassAction::jacobian(double, ConstVectorRef z, ConstVectorRef k, MatrixRef J, VectorRef work) const {
  const int R = spec_.reaction_count(), n = spec_.species_count();
  Eigen::Map<Matrix> dv(work.data() + R, R, n);  // dv/dz
  dv.setZero();
  for (int r = 0; r < R; ++r)
    for (int e = term_begin_[r]; e < term_begin_[r + 1]; ++e)
      dv(r, terms_[e].species) = k[r] * monomial_derivative(r, e, z);
  J.noalias() = net_t_ * dv;
}

void MassAction::jvp(double, ConstVectorRef z, ConstVectorRef k, ConstVectorRef v, VectorRef Jv, VectorRef work) const {
  const int R = spec_.reaction_count();
  auto dv = work.head(R);  // dv/dz v, reaction by reaction
  for (int r = 0; r < R; ++r) {
    double s = 0;
    for (int e = term_begin_[r]; e < term_begin_[r + 1]; ++e) s += monomial_derivative(r, e, z) * v[terms_[e].species];
    dv[r] = k[r] * s;
  }
  Jv.noalias() = net_t_ * dv;
}

MassActionSpec robertson_mass_action() {
  return MassActionSpec::parse({"y1", "y2", "y3"}, {"y1 -> y2", "y2 + y3 -> y1 + y3", "2 y2 -> y2 + y3"});
}

}  // namespace cvnode
