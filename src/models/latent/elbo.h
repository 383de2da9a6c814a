// The terms of the latent ODE's objective, each with its derivatives: the masked Gaussian
// log-likelihood of the observations, the KL divergence of q(z0) = N(mu, exp(logvar)) from
// N(0, I), Gaussian log-densities for the importance weights of the IWAE bound, and the
// log-mean-exp that combines K samples.
#pragma once

#include <vector>

#include "cvnode/dynamics.h"

namespace cvnode::latent {

// sum over observed entries of log N(x_ki; p_ki, sigma_i^2), sigma_i = exp(log_sigma_i).
// pred, values, mask: T x D (mask empty = all observed). Writes d/dpred (T x D) and adds
// d/dlog_sigma to dlog_sigma when it is not null.
double gaussian_loglik(const Matrix& pred, const Matrix& values, const Matrix& mask, ConstVectorRef log_sigma,
                       Matrix& dpred, Vector* dlog_sigma);

// KL(N(mu, diag exp(logvar)) || N(0, I)) with its derivatives.
double kl_standard_normal(ConstVectorRef mu, ConstVectorRef logvar, Vector& dmu, Vector& dlogvar);

// log N(z; mu, diag exp(logvar)).
double log_normal(ConstVectorRef z, ConstVectorRef mu, ConstVectorRef logvar);

// log (1/K sum_k exp(a_k)) and the normalised weights w_k = exp(a_k) / sum exp(a).
double log_mean_exp(const std::vector<double>& a, std::vector<double>& weights);

}  // namespace cvnode::latent
