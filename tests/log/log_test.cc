#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "engine/log/metrics_log.h"
#include "engine/log/progress.h"

namespace ruche {
namespace {

TEST(MetricsLog, WritesOneJsonObjectPerLine) {
  const auto path = std::filesystem::temp_directory_path() / "ruche_metrics_test.jsonl";
  std::filesystem::remove(path);
  {
    MetricsLog log(path.string());
    log.write(MetricsRecord("train").add("epoch", 1).add("loss", 0.5).add("note", "a\"b"));
    log.write(MetricsRecord("val").add("acc", std::nan("")));
  }
  std::ifstream in(path);
  std::string a, b;
  std::getline(in, a);
  std::getline(in, b);
  EXPECT_EQ(a, R"({"split": "train", "epoch": 1, "loss": 0.5, "note": "a\"b"})");
  EXPECT_EQ(b, R"({"split": "val", "acc": null})");
  std::filesystem::remove(path);
}

TEST(Progress, LineAndDurations) {
  Progress p;
  p.epoch = 2;
  p.epochs = 10;
  p.step = 1200;
  p.steps = 9380;
  p.loss = 0.34123;
  p.accuracy = 0.875;
  p.lr = 0.01;
  p.images_per_second = 2431.4;
  p.eta_seconds = 192;
  EXPECT_EQ(progress_line(p),
            "epoch 2/10  step 1200/9380  loss 0.3412  acc 87.50%  lr 0.01  2431 img/s  ETA 3m12s");
  p.losses = {{"loss1/loss", 0.7}, {"loss2/loss", 0.6}, {"loss3/loss", 0.5}};
  p.loss = 0.3 * 0.7 + 0.3 * 0.6 + 0.5;
  EXPECT_EQ(progress_line(p),
            "epoch 2/10  step 1200/9380  loss 0.8900 (loss1/loss 0.7000  loss2/loss 0.6000  "
            "loss3/loss 0.5000)  acc 87.50%  lr 0.01  2431 img/s  ETA 3m12s");
  p.losses.assign(20, {std::string(300, 'x'), 1.0});  // bounded, whatever the names
  EXPECT_LT(progress_line(p).size(), 1024u);
  EXPECT_EQ(human_duration(42), "42s");
  EXPECT_EQ(human_duration(3840), "1h04m");
  EXPECT_EQ(human_duration(-1), "?");
}

}  // namespace
}  // namespace ruche
