// The test split confirms, once, at the end (docs/ARCHITECTURE.md, Data): no decision reads it. A
// configuration whose decision (early stopping, best weights, target accuracy, a threshold)
// would have only the test split to read, or that names it, is refused with one line saying so.
#pragma once

#include <string>

#include "engine/proto/ruche.pb.h"

namespace ruche {

// Ends each refusal: why the configuration cannot stand.
inline constexpr const char* kTestOnlyConfirms =
    "a decision never reads the test split, which only confirms, once, at the end";

// Training: --monitor names the test split; --patience or --target-accuracy without a
// validation split (--val-fraction 0 on data that has none of its own).
void check_decisions_avoid_test(const proto::SolverParameter& solver, bool has_validation);

// ruche eval: a threshold (--target-recall / --target-precision) is chosen on validation only.
void check_threshold_avoids_test(const std::string& goal_flag, bool has_validation);

}  // namespace ruche
