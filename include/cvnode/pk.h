// Synthetic population pharmacokinetics with a known truth: the oral one-compartment model with
// first-order absorption, whose concentration after doses D_j at times t_j is the Bateman
// function superposed over the doses (no ODE solver involved):
//
//     C(t) = sum_{t_j <= t} F D_j ka / (V (ka - ke)) (exp(-ke (t - t_j)) - exp(-ka (t - t_j)))
//
// (ka = ke: F D_j ka / V (t - t_j) exp(-ke (t - t_j))). Subjects differ by log-normal random
// effects on ka, ke and V and by body weight WT, with allometric scaling of the volume
// (V ~ WT^1) and the clearance CL = ke V (CL ~ WT^0.75, so ke ~ WT^-0.25). Doses go into the
// depot compartment as events; the central concentration is measured with proportional noise at
// irregular times.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cvnode/dataset.h"

namespace cvnode {

// The oral one-compartment model at time t after the given doses (events with kind Dose into
// any compartment; infusions are not part of this model): the central concentration.
double bateman_concentration(double t, const std::vector<EventRecord>& doses, double ka, double ke, double V,
                             double bioavailability = 1.0);
// The amount left in the depot (gut) at time t: sum_{t_j <= t} F D_j exp(-ka (t - t_j)).
double bateman_depot(double t, const std::vector<EventRecord>& doses, double ka, double bioavailability = 1.0);

struct PkOptions {
  int subjects = 40;
  int observations = 10;      // per subject, spread over the dose intervals
  int doses = 1;              // per subject, every `interval` time units from t = 0
  double interval = 12;       // between doses (h)
  double t_end = 24;          // sampling horizon after the first dose (h); >= (doses - 1) * interval
  double dose = 100;          // mg; cohorts of subjects get 0.5x, 1x and 2x this amount in turn
  double ka = 1.0;            // population absorption rate (1/h), at WT = 70 kg
  double ke = 0.1;            // population elimination rate (1/h), at WT = 70 kg
  double V = 30;              // population volume (L), at WT = 70 kg
  double omega_ka = 0.3, omega_ke = 0.2, omega_V = 0.15;  // std of the log random effects
  double weight_median = 70, weight_cv = 0.2;             // log-normal body weight (kg)
  double noise = 0.1;         // proportional error: y = C (1 + noise * eps)
  std::uint64_t seed = 0;

  std::string validate() const;  // empty when valid, else the option and its value
};

// The truth of one subject.
struct PkSubject {
  std::string id;
  double weight = 0, ka = 0, ke = 0, V = 0;
};

// One series per subject: channel "conc" (mg/L) = the central concentration at irregular times,
// events = doses into compartment 0 "depot" (compartment 1 is "central"), covariate "WT" (kg),
// t0 = 0 (the first dose). The provenance records the options and every subject's parameters.
// Throws OptionsError for invalid options.
Dataset generate_pk(const PkOptions& options, std::vector<PkSubject>* truth = nullptr);

// The subjects' parameters recorded in a dataset's provenance by generate_pk (DataError if the
// dataset was not made by it), and the population parameters at a weight.
std::vector<PkSubject> pk_truth(const Dataset& data);
struct PkTypical {
  double ka, ke, V;
};
PkTypical pk_typical(const PkOptions& options, double weight);
PkOptions pk_options(const Dataset& data);  // the options recorded in the provenance

// The generator's truth scored like a fitted model on the subjects `ids` of `data` (every
// observed concentration, data units): the RMSE of each subject's own curve (the noise floor),
// of the population's typical values at the subject's weight (the best a population model that
// reads the weight can do without the subject's random effects) and at 70 kg (the best without
// the weight). Throws DataError when `data` was not made by generate_pk or an id is not in it.
//
// Beside those, the true model evaluated as a mixed-effects model evaluates a new subject
// (empirical Bayes): each subject's eta = (log ka, log ke, log V deviations) is the mode of its
// posterior under the true population, the typical values at the subject's weight with the
// generator's Omega = diag(omega_ka^2, omega_ke^2, omega_V^2), and an additive residual
// variance sigma^2 = the own curves' mean squared error on these subjects (the noise floor,
// what a fit's residual variance estimates): `eb_at_weight`. `eb_70kg`: the same without the
// weight (typical values at 70 kg; Omega_V and Omega_ke widened by the weight's allometric
// spread), the truth as a model that does not read the weight would be.
struct PkTruthErrors {
  double own = 0, typical_at_weight = 0, typical_70kg = 0;
  double eb_at_weight = 0, eb_70kg = 0;
  long entries = 0;
};
PkTruthErrors pk_truth_errors(const Dataset& data, const std::vector<std::string>& ids);

}  // namespace cvnode
