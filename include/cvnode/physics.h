// Physics building blocks for hybrid models, in one include: linear decay, mass-action reaction
// networks, Robertson's kinetics, constrained parameters, the AutoDiff adapter and Hybrid.
#pragma once

#include "cvnode/autodiff_dynamics.h"
#include "cvnode/hybrid.h"
#include "cvnode/linear_decay.h"
#include "cvnode/mass_action.h"
#include "cvnode/parameter_transform.h"
#include "cvnode/robertson.h"
