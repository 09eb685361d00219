// The test split only confirms: every configuration whose decision would read it is refused
// with one line saying why (early stopping, best weights, target accuracy, eval's threshold),
// and --class-weights reach the loss layer.
#include "engine/train/discipline.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/rng/fill.h"
#include "engine/tensor/npz.h"
#include "engine/train/eval_run.h"
#include "engine/train/trainer.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;

// Two classes of 8x8 images told apart by brightness, with a test split.
TrainRun two_class_run(const fs::path& dir) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  Tensor x = Tensor::empty({120, 1, 8, 8});
  Tensor y = Tensor::empty({120}, DType::i32);
  fill_uniform(x, 0, 0.5f, RngStream{2, RngPurpose::test, 0, 0, 0});
  for (int i = 0; i < 120; ++i) {
    y.data<std::int32_t>()[i] = i % 4 == 0;  // 30 of class 1, 90 of class 0
    for (int j = 0; j < 64; ++j)
      x.data<float>()[i * 64 + j] += 0.4f * static_cast<float>(i % 4 == 0);
  }
  save_npz((dir / "data.npz").string(), {{"x_train", x},
                                         {"y_train", y},
                                         {"x_test", x.narrow(0, 0, 40)},
                                         {"y_test", y.narrow(0, 0, 40)}});
  TrainRun run;
  run.model = "mlp";
  run.data = DataSpec((dir / "data.npz").string());
  run.out_dir = (dir / "run").string();
  run.solver = default_solver();
  run.solver.set_batch_size(16);
  run.solver.set_max_epochs(1);
  run.solver.set_val_fraction(0.25f);
  return run;
}

// Expects train(run) to refuse with a message holding `what` and the reason.
void expect_refused(const TrainRun& run, const std::string& what) {
  const std::string message = testing::error_of([&] { train(run); });
  EXPECT_NE(message.find(what), std::string::npos) << message;
  EXPECT_NE(message.find(kTestOnlyConfirms), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
}

TEST(Discipline, MonitorNamingTheTestSplitIsRefused) {
  TrainRun run = two_class_run(fs::temp_directory_path() / "ruche_discipline_monitor");
  run.solver.set_patience(2);
  run.solver.set_monitor("test_acc");
  expect_refused(run, "--monitor test_acc: early stopping and best weights watch val_acc");
}

TEST(Discipline, PatienceWithoutValidationIsRefused) {
  TrainRun run = two_class_run(fs::temp_directory_path() / "ruche_discipline_patience");
  run.solver.set_patience(3);
  run.solver.set_val_fraction(0);
  expect_refused(run, "--patience 3 needs a validation split");
}

TEST(Discipline, TargetAccuracyWithoutValidationIsRefused) {
  TrainRun run = two_class_run(fs::temp_directory_path() / "ruche_discipline_target");
  run.solver.set_target_accuracy(0.9f);
  run.solver.set_val_fraction(0);
  expect_refused(run, "--target-accuracy needs a validation split");
}

TEST(Discipline, EvalThresholdWithoutValidationIsRefused) {
  TrainRun run = two_class_run(fs::temp_directory_path() / "ruche_discipline_threshold");
  run.solver.set_val_fraction(0);
  run.checkpoint.enabled = false;
  ASSERT_EQ(train(run), kExitOk);  // nothing decided on test: the run itself is fine
  EvalRequest request;
  request.weights = (fs::path(run.out_dir) / "model.npz").string();
  request.data = run.data;
  request.split = "test";
  request.goal = ThresholdGoal::recall;
  request.target = 0.9;
  const std::string message = testing::error_of([&] { evaluate_run(request); });
  EXPECT_NE(message.find("--target-recall chooses the threshold on the validation split"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(kTestOnlyConfirms), std::string::npos) << message;
}

TEST(Discipline, ClassWeightsAutoReachTheLossLayer) {
  TrainRun run = two_class_run(fs::temp_directory_path() / "ruche_discipline_weights");
  run.solver.set_class_weights("auto");
  run.solver.set_balance("over");
  run.checkpoint.enabled = false;
  ASSERT_EQ(train(run), kExitOk);
  std::ifstream in(fs::path(run.out_dir) / "net.prototxt");
  const std::string net{std::istreambuf_iterator<char>(in), {}};
  // Training split: 90 - round(0.25 * 90) = 67 of class 0, 30 - 8 = 22 of class 1; 89 / (2 n).
  EXPECT_NE(net.find("class_weight: " + std::to_string(89.0f / 134.0f).substr(0, 6)),
            std::string::npos)
      << net;
  EXPECT_NE(net.find("class_weight: 2.02"), std::string::npos) << net;
}

}  // namespace
}  // namespace ruche
