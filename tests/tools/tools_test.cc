// The eval, export and time subcommands, run as a user would: the built ruche binary
// ($RUCHE_BINARY) on a tiny npz dataset, after a few steps of `ruche train`.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "engine/graph/net.h"
#include "engine/models/models.h"
#include "engine/proto/text_format.h"
#include "engine/tensor/npz.h"

namespace ruche {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  int rc = -1;
  std::string output;  // stdout and stderr together
};

// Runs `ruche <args>` through the shell.
Outcome ruche(const std::string& args) {
  const char* binary = std::getenv("RUCHE_BINARY");
  EXPECT_NE(binary, nullptr) << "RUCHE_BINARY is not set";
  std::string command = binary ? binary : "ruche";
  command.append(" ").append(args).append(" 2>&1");
  Outcome run;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return run;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) run.output.append(buffer, n);
  const int status = pclose(pipe);
  run.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

// Runs a Python snippet with $RUCHE_PYTHON; argv[1:] are `args`. Returns its exit status.
int python(const std::string& code, const std::string& args) {
  const char* py = std::getenv("RUCHE_PYTHON");
  const fs::path script =
      fs::temp_directory_path() / ("ruche_tools_" + std::to_string(getpid()) + ".py");
  std::ofstream(script) << code;
  std::string command = py ? py : "python3";
  command.append(" ").append(script.string()).append(" ").append(args);
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The first number under "key" in a JSON text (the top-level one for the report's fields).
double json_number(const std::string& json, const std::string& key) {
  std::smatch m;
  const std::regex re("\"" + key + "\":\\s*([-+0-9.eE]+)");
  EXPECT_TRUE(std::regex_search(json, m, re)) << key << " not in " << json.substr(0, 200);
  return m.empty() ? -1 : std::stod(m[1]);
}

// A tiny classification set: x [n, 1, 8, 8] float32 whose class c samples are brighter in row c,
// y int32; train and test splits in Keras's names.
void write_dataset(const fs::path& path, int classes) {
  std::uint32_t state = 12345;
  auto noise = [&state] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / 16777216.0f - 0.5f;
  };
  auto make = [&](std::int64_t n, Tensor& x, Tensor& y) {
    x = Tensor::empty({n, 1, 8, 8});
    y = Tensor::empty({n}, DType::i32);
    for (std::int64_t i = 0; i < n; ++i) {
      const int c = static_cast<int>(i % classes);
      y.data<std::int32_t>()[i] = c;
      for (int p = 0; p < 64; ++p)
        x.data<float>()[i * 64 + p] = noise() + (p / 8 == c ? 1.0f : 0.0f);
    }
  };
  Tensor x, y, xt, yt;
  make(200, x, y);
  make(60, xt, yt);
  save_npz(path.string(), {{"x_train", x}, {"y_train", y}, {"x_test", xt}, {"y_test", yt}});
}

bool one_line(const std::string& s) {
  const std::string t = s.substr(0, s.find_last_not_of('\n') + 1);
  return !t.empty() && t.find('\n') == std::string::npos;
}

class ToolsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("ruche_tools_test_" + std::to_string(getpid()));
    fs::create_directories(dir_);
    write_dataset(dir_ / "three.npz", 3);
    write_dataset(dir_ / "two.npz", 2);
    for (const char* name : {"three", "two"}) {
      const Outcome r = ruche(std::string("train --model mlp --data ") + (dir_ / name).string() +
                              ".npz --max-steps 5 --batch-size 16 --threads 1 --out " +
                              (dir_ / (std::string("run_") + name)).string());
      ASSERT_EQ(r.rc, 0) << r.output;
    }
    trainer_test_json_ = read_file(dir_ / "run_three" / "eval-test.json");
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static fs::path run() { return dir_ / "run_three"; }
  static std::string data() { return (dir_ / "three.npz").string(); }

  static fs::path dir_;
  static std::string trainer_test_json_;
};
fs::path ToolsTest::dir_;
std::string ToolsTest::trainer_test_json_;

TEST_F(ToolsTest, EvalTestSplitMatchesTheTrainer) {
  ASSERT_FALSE(trainer_test_json_.empty());
  const fs::path out = dir_ / "test.json";
  const Outcome r = ruche("eval --weights " + (run() / "model.npz").string() + " --data " + data() +
                          " --threads 1 --json " + out.string());
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("test accuracy"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ROC AUC"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("macro"), std::string::npos) << r.output;
  const std::string json = read_file(out);
  EXPECT_EQ(json_number(json, "accuracy"), json_number(trainer_test_json_, "accuracy"));
  EXPECT_EQ(json_number(json, "samples"), 60);
  EXPECT_EQ(json, read_file(run() / "eval-test.json"));  // also written into the run
  EXPECT_EQ(python(R"(
import json, sys
d = json.load(open(sys.argv[1]))
for k in ["split", "samples", "num_classes", "loss", "accuracy", "top5", "per_class", "macro",
          "weighted", "auc", "confusion_matrix"]:
    assert k in d, k
assert d["split"] == "test" and d["num_classes"] == 3 and len(d["per_class"]) == 3
assert sum(map(sum, d["confusion_matrix"]["counts"])) == 60
assert {"precision", "recall", "f1", "support", "auc"} <= set(d["per_class"][0])
)",
                   out.string()),
            0);
}

// A deploy net (an Input without the labels top, no loss layer) evaluates the trained weights with
// the labels from the data: the same accuracy and loss as the trained net's eval, whether it ends
// in the classifier's scores (their softmax is taken) or in a Softmax.
TEST_F(ToolsTest, EvalOfADeployNetMatchesTheTrainedNet) {
  ASSERT_FALSE(trainer_test_json_.empty());
  proto::NetParameter trained;
  load_prototxt((run() / "net.prototxt").string(), trained);
  proto::NetParameter scores = trained;
  scores.clear_layer();
  std::string logits;
  for (const auto& layer : trained.layer()) {
    if (layer.type() == "SoftmaxWithLoss") {
      logits = layer.bottom(0);
      continue;
    }
    proto::LayerParameter& kept = *scores.add_layer() = layer;
    if (layer.type() == "Input") {
      kept.clear_top();
      kept.add_top(layer.top(0));
    }
  }
  ASSERT_FALSE(logits.empty());
  proto::NetParameter softmax = scores;
  proto::LayerParameter& prob = *softmax.add_layer();
  prob.set_name("prob");
  prob.set_type("Softmax");
  prob.add_bottom(logits);
  prob.add_top("prob");
  for (const auto& [name, net] :
       {std::pair{"deploy_scores", scores}, {"deploy_softmax", softmax}}) {
    const fs::path deploy = dir_ / (std::string(name) + ".prototxt");
    std::ofstream(deploy) << to_prototxt(net);
    const fs::path out = dir_ / (std::string(name) + ".json");
    const Outcome r =
        ruche("eval --weights " + (run() / "model.npz").string() + " --net " + deploy.string() +
              " --data " + data() + " --threads 1 --json " + out.string());
    ASSERT_EQ(r.rc, 0) << name << ": " << r.output;
    EXPECT_NE(r.output.find("test accuracy"), std::string::npos) << r.output;
    const std::string json = read_file(out);
    EXPECT_EQ(json_number(json, "samples"), 60) << name;
    EXPECT_EQ(json_number(json, "accuracy"), json_number(trainer_test_json_, "accuracy")) << name;
    EXPECT_NEAR(json_number(json, "loss"), json_number(trainer_test_json_, "loss"), 1e-5) << name;
  }
}

// A net with two losses (an auxiliary head at loss_weight 0.3): the progress line, metrics.jsonl
// and TensorBoard report each loss by layer name beside the weighted total.
TEST_F(ToolsTest, TwoLossNetReportsEachLoss) {
  const fs::path net = dir_ / "two_losses.prototxt";
  std::ofstream(net) << R"(
layer { name: "in" type: "Input" top: "data" top: "label" }
layer { name: "fc1" type: "InnerProduct" bottom: "data" top: "fc1" inner_product_param { num_output: 8 } }
layer { name: "relu1" type: "ReLU" bottom: "fc1" top: "fc1" }
layer { name: "aux" type: "InnerProduct" bottom: "fc1" top: "aux" inner_product_param { num_output: 3 } }
layer { name: "loss1/loss" type: "SoftmaxWithLoss" bottom: "aux" bottom: "label" top: "loss1" loss_weight: 0.3 }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2" inner_product_param { num_output: 3 } }
layer { name: "loss2/loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss2" }
)";
  const fs::path out = dir_ / "run_two_losses";
  const Outcome r = ruche("train --net " + net.string() + " --data " + data() +
                          " --max-steps 4 --batch-size 16 --threads 1 --out " + out.string());
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find(" (loss1/loss "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  loss2/loss "), std::string::npos) << r.output;
  std::ifstream metrics(out / "metrics.jsonl");
  std::string line;
  int train_lines = 0;
  while (std::getline(metrics, line)) {
    if (line.find("\"split\": \"train\"") == std::string::npos) continue;
    ++train_lines;
    const double aux = json_number(line, "loss/loss1/loss");
    const double main = json_number(line, "loss/loss2/loss");
    EXPECT_GT(aux, 0) << line;
    EXPECT_GT(main, 0) << line;
    // The total is the weighted sum (metrics.jsonl keeps six significant digits).
    EXPECT_NEAR(json_number(line, "loss"), 0.3 * aux + main, 1e-4) << line;
  }
  EXPECT_GE(train_lines, 1);
}

TEST_F(ToolsTest, EvalValSplitReproducesTrainingValidation) {
  const Outcome r = ruche("eval --weights " + (run() / "model.npz").string() + " --data " + data() +
                          " --split val --threads 1");
  ASSERT_EQ(r.rc, 0) << r.output;
  const std::string json = read_file(run() / "eval-val.json");
  // The last validation line of metrics.jsonl: the weights model.npz holds.
  std::ifstream metrics(run() / "metrics.jsonl");
  std::string line, val;
  while (std::getline(metrics, line)) {
    if (line.find("\"split\": \"val\"") != std::string::npos ||
        line.find("\"split\":\"val\"") != std::string::npos) {
      val = line;
    }
  }
  ASSERT_FALSE(val.empty());
  EXPECT_EQ(json_number(json, "samples"), 21);  // round(10%) of each class: 7 + 7 + 7
  // metrics.jsonl keeps six significant digits.
  EXPECT_NEAR(json_number(json, "accuracy"), json_number(val, "acc"), 1e-6);
  EXPECT_NEAR(json_number(json, "loss"), json_number(val, "loss"), 1e-5);
}

TEST_F(ToolsTest, ThresholdIsChosenOnValAndReportedOnTest) {
  const fs::path two = dir_ / "run_two";
  const fs::path roc = dir_ / "roc.csv";
  const Outcome r = ruche("eval --weights " + (two / "model.npz").string() + " --data " +
                          (dir_ / "two.npz").string() + " --target-recall 0.9 --roc " +
                          roc.string() + " --threads 1");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("chosen on val"), std::string::npos) << r.output;
  EXPECT_EQ(python(R"(
import json, sys
d = json.load(open(sys.argv[1]))
t = d["threshold"]
assert t["goal"] == "recall" and t["target"] == 0.9 and t["met"], t
assert t["chosen_on"]["split"] == "val" and t["chosen_on"]["recall"] >= 0.9, t
assert t["evaluated_on"]["split"] == "test", t
e = t["evaluated_on"]
assert e["tp"] + e["fp"] + e["tn"] + e["fn"] == 60, e
rows = open(sys.argv[2]).read().split()
assert rows[0] == "fpr,tpr,threshold" and len(rows) > 3, rows[:3]
)",
                   (two / "eval-test.json").string() + " " + roc.string()),
            0);
  const Outcome three = ruche("eval --weights " + (run() / "model.npz").string() + " --data " +
                              data() + " --target-precision 0.9");
  EXPECT_EQ(three.rc, 2) << three.output;
  EXPECT_NE(three.output.find("two-class"), std::string::npos) << three.output;
  const Outcome roc3 = ruche("eval --weights " + (run() / "model.npz").string() + " --data " +
                             data() + " --roc " + roc.string());
  EXPECT_EQ(roc3.rc, 2) << roc3.output;
}

// ---- the input record (RUN/preprocess.json) ----

// The record of an npz run holds numpy's per-channel statistics of the training split (here all
// of x_train: --val-fraction 0), the stored values unscaled, the sample shape and class names.
TEST_F(ToolsTest, RecordHoldsTheTrainingSplitsStatistics) {
  const fs::path out = dir_ / "run_stats";
  const Outcome r = ruche("train --model mlp --data " + (dir_ / "two.npz").string() +
                          " --max-steps 1 --batch-size 16 --threads 1 --val-fraction 0 "
                          "--no-checkpoint --out " +
                          out.string());
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("preprocess: values, mean "), std::string::npos) << r.output;
  EXPECT_EQ(python(R"(
import json, sys, numpy as np
r = json.load(open(sys.argv[1]))
x = np.load(sys.argv[2])["x_train"].astype(np.float64)
assert r["source"] == "npz" and r["input"] == "values" and r["scale"] == 1, r
assert r["sample_shape"] == ["1", "8", "8"] or r["sample_shape"] == [1, 8, 8], r
assert r["class_names"] == ["0", "1"], r
assert abs(r["mean"][0] - x.mean()) < 1e-6 * max(1, abs(x.mean())), (r["mean"], x.mean())
assert abs(r["std"][0] - x.std()) < 1e-6 * x.std(), (r["std"], x.std())
)",
                   (out / "preprocess.json").string() + " " + (dir_ / "two.npz").string()),
            0);
}

// Fashion-MNIST's record is the fixed one (pixels / 255, 0.2860 / 0.3530); --normalize none and
// given statistics are recorded as chosen; a bad value is one line, exit 2.
TEST_F(ToolsTest, NormalizeFlagIsRecorded) {
  const std::string base = " --max-steps 1 --batch-size 16 --threads 1 --no-checkpoint";
  Outcome r = ruche("train --model mlp" + base + " --out " + (dir_ / "run_fashion").string());
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("preprocess: pixels / 255, mean 0.286 std 0.353, gray 1x28x28 "
                          "(--normalize)"),
            std::string::npos)
      << r.output;
  r = ruche("train --model mlp --data " + data() + base + " --normalize none --out " +
            (dir_ / "run_none").string());
  ASSERT_EQ(r.rc, 0) << r.output;
  std::string json = read_file(dir_ / "run_none" / "preprocess.json");
  EXPECT_EQ(json.find("\"mean\""), std::string::npos) << json;
  r = ruche("train --model mlp --data " + data() + base + " --normalize 0.5/0.25 --out " +
            (dir_ / "run_given").string());
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(python(R"(
import json, sys
r = json.load(open(sys.argv[1]))
assert r["mean"] == [0.5] and r["std"] == [0.25], r
)",
                   (dir_ / "run_given" / "preprocess.json").string()),
            0);
  r = ruche("train --model mlp --data " + data() + base + " --normalize 0.5,0.5/1,1");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_TRUE(one_line(r.output)) << r.output;
  EXPECT_NE(r.output.find("2 means for samples of shape [1, 8, 8]"), std::string::npos) << r.output;
}

// eval normalises as the record says, not as it would compute: an edited record changes what it
// reports, a deleted one (a run from before records) falls back to what the run used.
TEST_F(ToolsTest, EvalFollowsTheRecord) {
  const fs::path copy = dir_ / "run_edited";
  fs::remove_all(copy);
  fs::copy(run(), copy, fs::copy_options::recursive);
  const std::string eval = " --data " + data() + " --split val --threads 1";
  Outcome r = ruche("eval --weights " + (copy / "model.npz").string() + eval);
  ASSERT_EQ(r.rc, 0) << r.output;
  const double loss = json_number(read_file(copy / "eval-val.json"), "loss");
  ASSERT_EQ(python(R"(
import json, sys
r = json.load(open(sys.argv[1]))
r["mean"] = [r["mean"][0] + 1.0]
json.dump(r, open(sys.argv[1], "w"))
)",
                   (copy / "preprocess.json").string()),
            0);
  r = ruche("eval --weights " + (copy / "model.npz").string() + eval);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(json_number(read_file(copy / "eval-val.json"), "loss"), loss);
  fs::remove(copy / "preprocess.json");
  r = ruche("eval --weights " + (copy / "model.npz").string() + eval);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(json_number(read_file(copy / "eval-val.json"), "loss"), loss);
}

// A record beside --net (as an import writes it, or an earlier run's directory) is followed and
// becomes the run's; one that does not fit the data is one line, exit 2; a resume with another
// normalisation than the checkpoint's is refused.
TEST_F(ToolsTest, RecordBesideTheNetIsFollowed) {
  const fs::path imported = dir_ / "imported";
  fs::create_directories(imported);
  fs::copy_file(run() / "net.prototxt", imported / "net.prototxt",
                fs::copy_options::overwrite_existing);
  std::ofstream(imported / "preprocess.json")
      << R"({"source": "npz", "input": "values", "scale": 2, "mean": [0.25], "std": [4],
            "sample_shape": [1, 8, 8], "class_names": ["a", "b", "c"]})";
  const fs::path out = dir_ / "run_imported";
  const std::string args = "train --net " + (imported / "net.prototxt").string() + " --data " +
                           data() + " --batch-size 16 --threads 1 --out " + out.string();
  Outcome r = ruche(args + " --max-steps 2");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("preprocess: values x 2, mean 0.25 std 4, 1x8x8"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find((imported / "preprocess.json").string()), std::string::npos) << r.output;
  const std::string json = read_file(out / "preprocess.json");
  EXPECT_NEAR(json_number(json, "scale"), 2, 0) << json;
  // Resuming that run with another normalisation would feed its weights other inputs.
  r = ruche(args + " --resume auto --max-steps 3 --normalize none");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("other input preprocessing"), std::string::npos) << r.output;

  std::ofstream(imported / "preprocess.json")
      << R"({"input": "values", "sample_shape": [3, 8, 8]})";
  r = ruche(args + " --max-steps 2");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_TRUE(one_line(r.output)) << r.output;
  EXPECT_NE(r.output.find("the record is for samples of shape [3, 8, 8] but the data (npz) has "
                          "[1, 8, 8]"),
            std::string::npos)
      << r.output;
}

TEST_F(ToolsTest, ExportNpzLoadsInNumpyWithPyTorchNames) {
  const fs::path out = dir_ / "exported.npz";
  const Outcome r = ruche("export --from " + run().string() + " --format npz -o " + out.string());
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(python(R"(
import sys, numpy as np
e, m = np.load(sys.argv[1]), np.load(sys.argv[2])
names = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
assert list(e.keys()) == names, list(e.keys())
assert e["fc1.weight"].shape == (256, 64) and e["fc3.weight"].shape == (3, 128)
for n in names:
    assert e[n].dtype == np.float32 and np.array_equal(e[n], m[n]), n
)",
                   out.string() + " " + (run() / "model.npz").string()),
            0);
}

TEST_F(ToolsTest, ExportedPrototxtParsesBack) {
  const fs::path out = dir_ / "exported.prototxt";
  Outcome r = ruche("export --from " + run().string() + " --format prototxt -o " + out.string());
  ASSERT_EQ(r.rc, 0) << r.output;
  const proto::NetParameter net = load_net(out.string(), nullptr);
  const proto::NetParameter used = load_net((run() / "net.prototxt").string(), nullptr);
  EXPECT_EQ(to_prototxt(net), to_prototxt(used));

  r = ruche("export --model resnet18 --format prototxt --input 3,32,32 --classes 10");
  ASSERT_EQ(r.rc, 0) << r.output;
  const proto::NetParameter parsed = parse_net(r.output, "stdout", nullptr);
  EXPECT_EQ(to_prototxt(parsed),
            to_prototxt(builtin_model("resnet18", ModelOptions{Shape{3, 32, 32}, 10})));
}

TEST_F(ToolsTest, TimePrintsEveryLayer) {
  const Outcome r = ruche("time --model lenet --batch-size 4 --iterations 2 --threads 1");
  ASSERT_EQ(r.rc, 0) << r.output;
  const proto::NetParameter lenet = builtin_model("lenet", {});
  for (const auto& layer : lenet.layer()) {
    EXPECT_TRUE(std::regex_search(r.output, std::regex("\n" + layer.name() + " +" + layer.type())))
        << layer.name() << " missing in\n"
        << r.output;
  }
  EXPECT_NE(r.output.find("images/s"), std::string::npos);
  const Outcome net = ruche("time --net " + (run() / "net.prototxt").string() +
                            " --iterations 1 --classes 3 --threads 1");
  EXPECT_EQ(net.rc, 0) << net.output;
  // The GPU flags are taken (and checked) on any device; --deterministic only matters on a GPU.
  const Outcome gpu_flags =
      ruche("time --model lenet --batch-size 2 --iterations 1 --threads 1 --deterministic");
  EXPECT_EQ(gpu_flags.rc, 0) << gpu_flags.output;
}

TEST_F(ToolsTest, BadInputsAreOneLineErrorsWithExitCode2) {
  struct Case {
    std::string args, expect;
  };
  const fs::path lone = dir_ / "lone";
  fs::create_directories(lone);
  fs::copy_file(run() / "model.npz", lone / "w.npz", fs::copy_options::overwrite_existing);
  const Case cases[] = {
      {"eval --weights " + (dir_ / "missing.npz").string(), "missing.npz: no such weights file"},
      {"eval --weights " + (lone / "w.npz").string(), "no net beside the weights"},
      {"eval --weights " + (run() / "model.npz").string() + " --data " + data() + " --split train",
       "--split train: expected val or test"},
      {"eval --weights " + (run() / "model.npz").string() + " --net " +
           (dir_ / "nonet.prototxt").string(),
       "nonet.prototxt: no such net file"},
      {"time --model mlp --input 1,x,8", "--input 1,x,8: expected C,H,W"},
      {"export --model mlp --format prototxt --input 0,8,8", "--input 0,8,8"},
      {"export --from " + (dir_ / "nothere").string() + " --format npz -o x.npz",
       "nothere: no such run directory or weights file"},
      {"export --from " + run().string() + " --format npz", "needs -o"},
  };
  for (const Case& c : cases) {
    const Outcome r = ruche(c.args);
    EXPECT_EQ(r.rc, 2) << c.args << "\n" << r.output;
    EXPECT_TRUE(one_line(r.output)) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << "\n" << r.output;
  }
}

}  // namespace
}  // namespace ruche
