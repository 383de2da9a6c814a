// Mass-action reaction networks: reaction r converts reactants into products at the rate
//   v_r = k_r * prod_i z_i^R(r,i),
// and the state (species concentrations) changes by dz/dt = (P - R)^T v, with R and P the
// reactant and product stoichiometric matrices (reactions x species, non-negative integers; the
// reactant coefficients are also the reaction orders). The rate constants k are the parameters.
#pragma once

#include <string>
#include <vector>

#include "cvnode/dynamics.h"

namespace cvnode {

// A reaction network as a config file can state it: species names and reaction strings.
struct MassActionSpec {
  // One name per state component, in state order (optional when R and P are given directly).
  std::vector<std::string> species;
  Eigen::MatrixXi reactants;  // R, reactions x species
  Eigen::MatrixXi products;   // P, reactions x species

  int species_count() const { return static_cast<int>(reactants.cols()); }
  int reaction_count() const { return static_cast<int>(reactants.rows()); }
  // Empty when valid, else a readable reason.
  std::string validate() const;
  // Reaction r written back as text, e.g. "2 y2 -> y2 + y3".
  std::string reaction_string(int r) const;

  // Builds R and P from reactions such as "A + B -> C", "2 y2 -> y2 + y3", "A ->" (a sink) or
  // "-> A" (a zeroth-order source); "0" also denotes an empty side. Coefficients are written
  // "2 A" or "2*A". Throws OptionsError naming the reaction and the unknown token.
  static MassActionSpec parse(std::vector<std::string> species, const std::vector<std::string>& reactions);
};

class MassAction final : public Dynamics {
 public:
  // Throws OptionsError with the reason from MassActionSpec::validate().
  explicit MassAction(MassActionSpec spec);

  const MassActionSpec& spec() const { return spec_; }
  int state_size() const override { return spec_.species_count(); }
  bool smooth() const override { return true; }  // polynomial rate laws
  int param_size() const override { return spec_.reaction_count(); }  // theta = k, one per reaction
  int workspace_size() const override;

  void rhs(double t, ConstVectorRef z, ConstVectorRef k, VectorRef f, VectorRef work) const override;
  void vjp(double t, ConstVectorRef z, ConstVectorRef k, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdk, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef z, ConstVectorRef k, MatrixRef J, VectorRef work) const override;
  void jvp(double t, ConstVectorRef z, ConstVectorRef k, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;

 private:
  struct Term {
    int species, order;
  };
  // prod_i z_i^R(r,i) of reaction r.
  double monomial(int r, ConstVectorRef z) const;
  // d monomial_r / d z_{species of term e} (no division: zero concentrations are fine).
  double monomial_derivative(int r, int e, ConstVectorRef z) const;

  MassActionSpec spec_;
  Matrix net_t_;                          // (P - R)^T, species x reactions
  std::vector<int> term_begin_;           // reactant terms of reaction r: [term_begin_[r], term_begin_[r+1])
  std::vector<Term> terms_;
};

// Robertson's kinetics (cvnode::Robertson in physics.h, parameter order of SUNDIALS' cvsRoberts)
// as three mass-action reactions over species (y1, y2, y3):
//   y1 -> y2 (p1 = 0.04),  y2 + y3 -> y1 + y3 (p2 = 1e4),  2 y2 -> y2 + y3 (p3 = 3e7).
MassActionSpec robertson_mass_action();

}  // namespace cvnode
