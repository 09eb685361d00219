#include "engine/train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/rng/fill.h"
#include "engine/tensor/npz.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;

// A small separable 3-class problem: the class sets the mean brightness of an 8x8 image.
std::string make_dataset(const fs::path& dir) {
  fs::create_directories(dir);
  Tensor x = Tensor::empty({240, 1, 8, 8});
  Tensor y = Tensor::empty({240}, DType::i32);
  fill_uniform(x, 0, 0.5f, RngStream{1, RngPurpose::test, 0, 0, 0});
  float* px = x.data<float>();
  for (int i = 0; i < 240; ++i) {
    y.data<std::int32_t>()[i] = i % 3;
    for (int j = 0; j < 64; ++j) px[i * 64 + j] += 0.25f * static_cast<float>(i % 3);
  }
  std::string path = (dir / "data.npz").string();
  save_npz(path, {{"x_train", x},
                  {"y_train", y},
                  {"x_test", x.narrow(0, 0, 60)},
                  {"y_test", y.narrow(0, 0, 60)}});
  return path;
}

TrainRun small_run(const fs::path& dir) {
  TrainRun run;
  run.model = "mlp";
  run.data = DataSpec(make_dataset(dir));
  run.out_dir = (dir / "run").string();
  run.solver = default_solver();
  run.solver.set_batch_size(16);
  run.solver.set_max_epochs(6);
  run.solver.set_display(5);
  run.solver.set_val_fraction(0.2f);
  return run;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(Trainer, WritesTheRunDirectory) {
  const fs::path dir = fs::temp_directory_path() / "ruche_trainer_run";
  fs::remove_all(dir);
  EXPECT_EQ(train(small_run(dir)), kExitOk);
  for (const char* f : {"net.prototxt", "solver.prototxt", "labels.txt", "metrics.jsonl",
                        "model.npz", "best.npz", "eval-test.json"}) {
    EXPECT_TRUE(fs::exists(dir / "run" / f)) << f;
  }
  const std::string metrics = read(dir / "run" / "metrics.jsonl");
  EXPECT_NE(metrics.find("\"split\": \"train\""), std::string::npos);
  EXPECT_NE(metrics.find("\"split\": \"val\""), std::string::npos);
  EXPECT_NE(metrics.find("\"split\": \"test\""), std::string::npos);
  // A CPU step never waits for a GPU.
  EXPECT_NE(metrics.find("\"syncs_per_step\": 0"), std::string::npos) << metrics.substr(0, 400);
  const auto weights = load_npz((dir / "run" / "model.npz").string());
  EXPECT_TRUE(weights.count("fc1.weight"));
  // The problem is easy: six epochs must learn it.
  const std::string report = read(dir / "run" / "eval-test.json");
  const auto at = report.find("\"accuracy\":");
  ASSERT_NE(at, std::string::npos);
  EXPECT_GT(std::stod(report.substr(at + 11)), 0.9) << report.substr(0, 200);
}

TEST(Trainer, DivergenceStopsWithExitCode3AndADiagnosis) {
  const fs::path dir = fs::temp_directory_path() / "ruche_trainer_nan";
  fs::remove_all(dir);
  TrainRun run = small_run(dir);
  run.solver.set_base_lr(1e30f);
  run.solver.set_warmup_epochs(0);
  ::testing::internal::CaptureStderr();
  const int code = train(run);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, kExitDiverged);
  EXPECT_NE(err.find("training diverged at step"), std::string::npos) << err;
  EXPECT_NE(err.find("layer '"), std::string::npos) << err;
  EXPECT_NE(err.find("lower learning rate"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir / "run" / "model.npz"));  // diverged weights are not saved
}

TEST(Trainer, SkipOnNanSkipsTheBadBatchAndKeepsGoing) {
  const fs::path dir = fs::temp_directory_path() / "ruche_trainer_skip";
  fs::remove_all(dir);
  TrainRun run = small_run(dir);
  // One corrupt training sample (a NaN in the middle, where no crop moves it out): the batch
  // that holds it has a NaN loss, once per epoch.
  auto arrays = load_npz(run.data.data);
  arrays["x_train"].data<float>()[100 * 64 + 4 * 8 + 4] = std::nanf("");
  save_npz(run.data.data, {{"x_train", arrays["x_train"]},
                           {"y_train", arrays["y_train"]},
                           {"x_test", arrays["x_test"]},
                           {"y_test", arrays["y_test"]}});
  run.solver.set_val_fraction(0);
  run.solver.set_max_epochs(2);
  run.solver.set_on_nan("skip");
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(train(run), kExitOk);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("skipped 2 steps"), std::string::npos) << out;  // once per epoch
  EXPECT_NE(out.find("test accuracy"), std::string::npos) << out;
}

TEST(Trainer, WarnsAtChanceLevel) {
  const fs::path dir = fs::temp_directory_path() / "ruche_trainer_chance";
  fs::remove_all(dir);
  TrainRun run = small_run(dir);
  run.solver.set_base_lr(0);  // nothing can be learned
  run.solver.set_chance_warning_epochs(1);
  run.solver.set_max_epochs(1);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(train(run), kExitOk);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("chance level"), std::string::npos) << err;
  EXPECT_NE(err.find("labels misaligned"), std::string::npos) << err;
}

TEST(Trainer, EarlyStoppingHonoursPatience) {
  const fs::path dir = fs::temp_directory_path() / "ruche_trainer_patience";
  fs::remove_all(dir);
  TrainRun run = small_run(dir);
  run.solver.set_base_lr(0);  // val accuracy never improves after the first epoch
  run.solver.set_patience(2);
  run.solver.set_max_epochs(10);
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(train(run), kExitOk);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("early stopping"), std::string::npos) << out;
  EXPECT_EQ(out.find("epoch 4/10"), std::string::npos) << "ran past the patience";
}

TEST(Trainer, TargetAccuracyStopsAndReportsTheTimeTaken) {
  const fs::path dir = fs::temp_directory_path() / "ruche_trainer_target";
  fs::remove_all(dir);
  TrainRun run = small_run(dir);
  run.solver.set_target_accuracy(0.6f);  // the easy problem passes it within two epochs
  run.solver.set_eval_every_epochs(2);
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(train(run), kExitOk);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("time to accuracy: validation top-1"), std::string::npos) << out;
  EXPECT_EQ(out.find("epoch 1/6  train loss"), std::string::npos) << "validated off cadence";
  EXPECT_EQ(out.find("epoch 3/6"), std::string::npos) << "ran past the target";
  EXPECT_NE(read(dir / "run" / "metrics.jsonl").find("\"time_to_accuracy_s\""), std::string::npos);
}

// The steps of metrics.jsonl's validation records, in order.
std::vector<long> validation_steps(const fs::path& metrics) {
  std::vector<long> steps;
  std::istringstream lines(read(metrics));
  for (std::string line; std::getline(lines, line);) {
    if (line.find("\"split\": \"val\"") == std::string::npos) continue;
    const auto at = line.find("\"step\": ");
    if (at != std::string::npos) steps.push_back(std::stol(line.substr(at + 8)));
  }
  return steps;
}

// eval_every_steps (Caffe's test_interval): validation after every N steps, across epoch ends,
// and after the last step; early stopping counts those validations and stops mid-epoch.
TEST(Trainer, ValidatesEveryNSteps) {
  const fs::path dir = fs::temp_directory_path() / "ruche_trainer_eval_steps";
  fs::remove_all(dir);
  TrainRun run = small_run(dir);
  run.solver.set_eval_every_steps(7);
  run.solver.set_max_iter(17);
  EXPECT_EQ(train(run), kExitOk);
  EXPECT_EQ(validation_steps(dir / "run" / "metrics.jsonl"), (std::vector<long>{7, 14, 17}));

  fs::remove_all(dir / "run");
  run.solver.set_eval_every_steps(3);
  run.solver.set_max_iter(30);
  run.solver.set_base_lr(0);  // no gain after the first validation
  run.solver.set_patience(2);
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(train(run), kExitOk);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("early stopping"), std::string::npos) << out;
  EXPECT_EQ(validation_steps(dir / "run" / "metrics.jsonl"), (std::vector<long>{3, 6, 9}));
}

TEST(Trainer, TargetAccuracyNeedsAValidationSplit) {
  const fs::path dir = fs::temp_directory_path() / "ruche_trainer_target_noval";
  fs::remove_all(dir);
  TrainRun run = small_run(dir);
  run.solver.set_target_accuracy(0.6f);
  run.solver.set_val_fraction(0);
  EXPECT_NE(testing::error_of([&] { train(run); }).find("never reads the test split"),
            std::string::npos);
}

TEST(Trainer, LabelSmoothingReachesTheLossLayer) {
  const fs::path dir = fs::temp_directory_path() / "ruche_trainer_smoothing";
  fs::remove_all(dir);
  TrainRun run = small_run(dir);
  run.solver.set_label_smoothing(0.1f);
  run.solver.set_max_epochs(1);
  EXPECT_EQ(train(run), kExitOk);
  EXPECT_NE(read(dir / "run" / "net.prototxt").find("label_smoothing: 0.1"), std::string::npos);
}

}  // namespace
}  // namespace ruche
