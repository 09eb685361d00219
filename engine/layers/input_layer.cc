// Input: where the batch enters the net. Its tops ("data" and optionally "label") are filled by the
// Net, so forward and backward do nothing.
//
// Convention with the Net: an Input layer has no bottoms in the prototxt, yet its reshape() is
// called with the shapes the Net will fill, {[B, sample...]} or {[B, sample...], label shape}, and
// returns them as the tops' shapes. When input_param gives dims, the sample shape must match them
// (the Net takes the sample shape from input_param when present, else from the dataset).
#include "engine/layers/layer_factories.h"
#include "engine/layers/layer_util.h"

namespace ruche {
namespace {

class InputLayer final : public Layer {
 public:
  explicit InputLayer(const proto::LayerParameter& p) : Layer(p) {
    RUCHE_REQUIRE(p.top_size() == 1 || p.top_size() == 2)
        << "Input: expected 1 or 2 tops (data, label), got " << p.top_size();
  }

  int num_bottoms() const override { return 0; }
  int num_tops() const override { return -1; }

  std::vector<Shape> reshape(const std::vector<Shape>& bottoms, int) override {
    const auto tops = static_cast<std::size_t>(param().top_size());
    RUCHE_REQUIRE(!bottoms.empty() && bottoms.size() <= 2)
        << "Input: the Net passes the data shape [B, sample...] (and the label shape), got "
        << bottoms.size() << " shapes";
    const Shape& data = bottoms[0];
    RUCHE_REQUIRE(data.ndim() >= 2)
        << "Input: expected a data shape [B, sample...], got " << data.str();
    const auto& dims = param().input_param().dim();
    if (!dims.empty()) {
      const Shape want(dims.begin(), dims.end());
      const Shape got(data.begin() + 1, data.end());
      RUCHE_REQUIRE(want == got) << "Input: input_param dims " << want.str()
                                 << " do not match the data's sample shape " << got.str();
    }
    std::vector<Shape> out{data};
    if (tops == 2) out.push_back(bottoms.size() == 2 ? bottoms[1] : Shape{data[0]});
    return out;
  }

  void forward(LayerIO&, const StepContext&) override {}
  void backward(LayerIO&, const StepContext&) override {}
};

}  // namespace

std::unique_ptr<Layer> make_input_layer(const proto::LayerParameter& p) {
  return std::make_unique<InputLayer>(p);
}

}  // namespace ruche
