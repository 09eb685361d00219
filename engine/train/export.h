// `ruche export`: a run's weights as an npz of PyTorch state_dict names (what save_weights
// writes), and its net as prototxt.
#pragma once

#include <string>

namespace ruche {

// The weights `from` names: RUN/model.npz for a run directory, else the file itself. A missing
// file is a ruche::Error naming it.
std::string weights_of(const std::string& from);

// Writes the weights of `from` to `to` as save_weights does: float32 tensors under their
// state_dict names, num_batches_tracked as 0-d int64, written atomically. When a net.prototxt is
// beside the weights, every name must belong to one of its layers. Returns the tensor count.
int export_weights(const std::string& from, const std::string& to);

// The net of `from` (RUN/net.prototxt, or the net.prototxt beside W.npz), parsed and written
// back as prototxt text.
std::string export_net(const std::string& from);

}  // namespace ruche
