// `ruche export --from CKPT` and `ruche inspect CKPT`: a checkpoint's weights as a PyTorch-named
// npz, its net as prototxt, its description.
#include "engine/train/export.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>

#include "engine/tensor/npz.h"
#include "engine/train/weights.h"
#include "tests/checkpoint/fixture.h"
#include "tests/support/errors.h"

namespace ruche {
namespace {

using namespace checkpoint_test;
using testing::error_of;

TEST(ExportFromCheckpoint, WeightsInStateDictOrderWithIntegerCounter) {
  const std::string run = temp_dir("export");
  Model m = make_model(1);
  const std::string root = (fs::path(run) / "ckpt").string();
  const std::string dir = save(m, root, 30, 2);
  const std::string out = run + "/out.npz";

  for (const std::string& from : {dir, root, run, root + "/latest"}) {
    EXPECT_EQ(checkpoint_of(from), dir) << from;
    fs::remove(out);
    const int n = export_weights(from, out);
    const auto sd = m.net->state_dict();
    ASSERT_EQ(n, static_cast<int>(sd.size())) << from;
    // The npz holds the state_dict's names in its order, and the same values.
    EXPECT_EQ(list_npz(out).size(), sd.size());
    std::vector<std::string> names;
    names.reserve(sd.size());
    for (const auto& [name, view] : sd) names.push_back(name);
    EXPECT_EQ(list_npz(out), names);
    const auto file = load_npz(out);
    for (const auto& [name, view] : sd) {
      const Tensor& t = file.at(name);
      if (name == "bn1.num_batches_tracked") {
        EXPECT_EQ(t.dtype(), DType::i64);
        EXPECT_EQ(t.ndim(), 0);
        EXPECT_EQ(t.data<std::int64_t>()[0], static_cast<std::int64_t>(view.to_vector<float>()[0]));
        continue;
      }
      EXPECT_EQ(t.shape(), view.shape()) << name;
      EXPECT_EQ(t.to_vector<float>(), view.to_vector<float>()) << name;
    }
  }
  // A fresh net loads it strictly.
  Model fresh = make_model(8);
  const LoadReport report = load_weights(*fresh.net, out, false);
  EXPECT_EQ(report.loaded, static_cast<int>(fresh.net->state_dict().size()));
  EXPECT_EQ(fresh.net->state_tensor("conv2.weight").to_vector<float>(),
            m.net->state_tensor("conv2.weight").to_vector<float>());

  // The net as prototxt, from the manifest.
  const std::string net = export_net(dir);
  EXPECT_NE(net.find("name: \"conv2\""), std::string::npos) << net;
  EXPECT_NE(net.find("num_output: 3"), std::string::npos) << net;
}

TEST(ExportFromCheckpoint, DamagedCheckpointIsAnErrorNamingTheFile) {
  const std::string run = temp_dir("export-bad");
  Model m = make_model(1);
  const std::string dir = save(m, run + "/ckpt", 30, 2);
  fs::remove(fs::path(dir) / "shard-00000-of-00002.bin");
  EXPECT_EQ(error_of([&] { export_weights(dir, run + "/out.npz"); }),
            dir + "/shard-00000-of-00002.bin: missing");
  EXPECT_FALSE(fs::exists(run + "/out.npz"));
}

// Runs the ruche binary the tests were built with; "" when RUCHE_BINARY is unset.
std::string run_ruche(const std::string& args, int* status) {
  const char* binary = std::getenv("RUCHE_BINARY");
  if (!binary) return "";
  const std::string command = std::string(binary).append(" ").append(args).append(" 2>&1");
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string out;
  std::array<char, 4096> buffer;
  std::size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) out.append(buffer.data(), n);
  const int raw = ::pclose(pipe);
  *status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return out;
}

TEST(InspectCommand, DescribesTheNewestCheckpointOfARun) {
  if (!std::getenv("RUCHE_BINARY")) GTEST_SKIP() << "RUCHE_BINARY unset (run through ctest)";
  const std::string run = temp_dir("inspect");
  Model m = make_model(1);
  save(m, run + "/ckpt", 10, 2);
  const std::string dir = save(m, run + "/ckpt", 20, 3);
  int status = 0;
  const std::string text = run_ruche("inspect " + run, &status);
  EXPECT_EQ(status, 0) << text;
  EXPECT_NE(text.find("checkpoint " + dir + " (committed)"), std::string::npos) << text;
  EXPECT_NE(text.find("written by 3 ranks with 2 threads each"), std::string::npos) << text;
  EXPECT_NE(text.find("shard-00002-of-00003.bin"), std::string::npos) << text;
  EXPECT_NE(text.find("usable for resume"), std::string::npos) << text;

  const std::string missing = run_ruche("inspect " + run + "/nothing", &status);
  EXPECT_EQ(status, 2) << missing;
  EXPECT_NE(missing.find(run + "/nothing: no such checkpoint"), std::string::npos) << missing;

  const std::string out = run + "/w.npz";
  const std::string exported =
      run_ruche("export --from " + run + "/ckpt/latest --format npz -o " + out, &status);
  EXPECT_EQ(status, 0) << exported;
  EXPECT_TRUE(fs::is_regular_file(out)) << exported;
}

}  // namespace
}  // namespace ruche
