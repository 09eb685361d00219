// The learning rate of each step from the solver's policy (Caffe's names, PyTorch's formulas).
//
// `step` counts the optimizer steps already taken (0 for the first); t = min(step, total_steps).
//   fixed      base_lr
//   step       base_lr * gamma^floor(step / stepsize)                    (torch StepLR)
//   multistep  base_lr * gamma^(number of stepvalue entries <= step)     (torch MultiStepLR)
//   exp        base_lr * gamma^step                                      (torch ExponentialLR)
//   inv        base_lr * (1 + gamma * step)^-power                       (Caffe's)
//   sigmoid    base_lr / (1 + exp(-gamma * (step - stepsize)))           (Caffe's)
//   poly       min_lr + (base_lr - min_lr) * (1 - t / total_steps)^power (torch PolynomialLR
//              when min_lr is 0)
//   cosine     min_lr + (base_lr - min_lr) * (1 + cos(pi * t / total_steps)) / 2
//              (torch CosineAnnealingLR with T_max = total_steps, eta_min = min_lr)
// Warmup (Goyal et al. 2017): over the first W steps (warmup_steps, or warmup_epochs *
// steps_per_epoch rounded) the policy's value is multiplied by (step + 1) / W, so the first step
// runs at 1/W of it and step W - 1 at the full value; the policy itself still counts from step 0.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/proto/ruche.pb.h"

namespace ruche {

// The lr for step `step`. total_steps is the run's length in steps (needed by poly and cosine);
// steps_per_epoch converts warmup_epochs. A bad policy or setting is a ruche::Error.
float lr_at(const proto::SolverParameter& solver, std::int64_t step, std::int64_t steps_per_epoch,
            std::int64_t total_steps);

// The warmup length in steps (0: none).
std::int64_t warmup_steps(const proto::SolverParameter& solver, std::int64_t steps_per_epoch);

// Throws ruche::Error when lr_at would: call once when a run starts.
void check_lr_schedule(const proto::SolverParameter& solver, std::int64_t steps_per_epoch,
                       std::int64_t total_steps);

// The policy names lr_at accepts.
std::vector<std::string> lr_policies();

}  // namespace ruche
