// ruche xor: the course's first networks on the truth tables. A perceptron learns AND and OR and
// cannot learn XOR; a small sigmoid network trained by gradient descent can.
#include <cstdio>
#include <string>

#include "engine/classic/mlp.h"
#include "engine/classic/perceptron.h"
#include "engine/classic/truth_table.h"
#include "engine/proto/ruche.pb.h"
#include "engine/proto/text_format.h"
#include "tools/commands.h"

namespace ruche::tools {
namespace {

void print_table(const Tensor& x, const Tensor& y, const std::vector<float>& outputs,
                 const char* output_name) {
  const auto xs = x.to_vector();
  const auto ys = y.to_vector();
  std::printf("      x1 x2 | y | %s\n", output_name);
  for (std::size_t i = 0; i < ys.size(); ++i) {
    std::printf("       %.0f  %.0f | %.0f | %.3f\n", xs[2 * i], xs[2 * i + 1], ys[i], outputs[i]);
  }
}

void run_perceptron(const proto::PerceptronParameter& p) {
  std::printf("Perceptron: y_hat = step(w.x + b), rule w += lr (y - y_hat) x, lr %g\n",
              p.learning_rate());
  const Tensor x = classic::truth_table_inputs();
  for (classic::Gate gate : {classic::Gate::AND, classic::Gate::OR, classic::Gate::XOR}) {
    const Tensor y = classic::truth_table_targets(gate);
    const auto r = classic::train_perceptron(x, y, p.learning_rate(), p.max_epochs());
    const auto w = r.weight.to_vector();
    std::printf("  %s: ", classic::gate_name(gate).c_str());
    if (r.converged) {
      std::printf("learned in %d epochs, w = [%g, %g], b = %g\n", r.epochs, w[0], w[1],
                  r.bias.item());
    } else if (r.cycled) {
      std::printf(
          "cannot be learned: after epoch %d the weights repeat an earlier epoch's, so "
          "the rule cycles forever (not linearly separable)\n",
          r.epochs);
    } else {
      std::printf("not learned within %d epochs\n", r.epochs);
    }
    print_table(x, y, r.predictions, "y_hat");
  }
}

void run_mlp(const proto::MlpParameter& p) {
  std::printf("\nSigmoid network 2-%d-1, mean squared error, gradient descent lr %g, %d epochs\n",
              p.hidden(), p.learning_rate(), p.max_epochs());
  const Tensor x = classic::truth_table_inputs();
  const Tensor y = classic::truth_table_targets(classic::Gate::XOR);
  const auto r = classic::train_mlp(x, y, p.hidden(), p.learning_rate(), p.max_epochs(), p.seed());
  const auto ys = y.to_vector();
  bool right = true;
  for (std::size_t i = 0; i < ys.size(); ++i)
    right = right && ((r.outputs[i] > 0.5f) == (ys[i] > 0.5f));
  std::printf("  XOR: loss %.5f, %s\n", r.final_loss,
              right ? "learned (every output on the right side of 0.5)"
                    : "NOT learned (try another seed or more epochs)");
  print_table(x, y, r.outputs, "output");
}

}  // namespace

void add_xor_command(CLI::App& app, int& exit_code) {
  static std::string config = "examples/xor/xor.prototxt";
  CLI::App* cmd =
      app.add_subcommand("xor", "Train a perceptron on AND/OR/XOR and a sigmoid network on XOR");
  cmd->add_option("--config", config, "XorExample prototxt")->capture_default_str();
  cmd->callback([&exit_code] {
    proto::XorExample example;
    load_prototxt(config, example);
    run_perceptron(example.perceptron());
    run_mlp(example.mlp());
    exit_code = 0;
  });
}

}  // namespace ruche::tools
