#include "engine/train/discipline.h"

#include "engine/error.h"

namespace ruche {

void check_decisions_avoid_test(const proto::SolverParameter& solver, bool has_validation) {
  RUCHE_REQUIRE(solver.monitor().rfind("test", 0) != 0)
      << "--monitor " << solver.monitor()
      << ": early stopping and best weights watch val_acc or val_loss; " << kTestOnlyConfirms;
  RUCHE_REQUIRE(solver.patience() == 0 || has_validation)
      << "--patience " << solver.patience()
      << " needs a validation split (--val-fraction > 0, or the data's own): early stopping "
      << "would have only the test split to watch; " << kTestOnlyConfirms;
  RUCHE_REQUIRE(solver.target_accuracy() == 0 || has_validation)
      << "--target-accuracy needs a validation split (--val-fraction > 0, or the data's own): "
      << kTestOnlyConfirms;
}

void check_threshold_avoids_test(const std::string& goal_flag, bool has_validation) {
  RUCHE_REQUIRE(has_validation)
      << goal_flag << " chooses the threshold on the validation split, and the run held out "
      << "none (--val-fraction 0): " << kTestOnlyConfirms;
}

}  // namespace ruche
