// `ruche export`: a run's weights as an npz of PyTorch state_dict names (what save_weights
// writes), and its net as prototxt; from a run, a weights file, or a checkpoint.
#pragma once

#include <string>

namespace ruche {

// The checkpoint directory `from` names, or "" when it names no checkpoint: a checkpoint
// directory (RUN/ckpt/step-N, with manifest.pb), RUN/ckpt/latest, a ckpt root (its newest
// committed checkpoint), or a run directory that has no model.npz but committed checkpoints.
std::string checkpoint_of(const std::string& from);

// The weights `from` names: RUN/model.npz for a run directory, else the file itself. A missing
// file is a ruche::Error naming it.
std::string weights_of(const std::string& from);

// Writes the weights of `from` to `to` as save_weights does: float32 tensors under their
// state_dict names, num_batches_tracked as 0-d int64, written atomically. When a net.prototxt is
// beside the weights, every name must belong to one of its layers. From a checkpoint (every shard
// verified), the parameters and buffers, in the order of the manifest's net. Returns the tensor
// count.
// With `net_file` (--net, e.g. a deploy net), that net replaces the one beside the weights and the
// tensors of layers it lacks (a training net's auxiliary heads) are left out.
int export_weights(const std::string& from, const std::string& to,
                   const std::string& net_file = "");

// The net of `from` (RUN/net.prototxt, the net.prototxt beside W.npz, or a checkpoint's manifest),
// parsed and written back as prototxt text.
std::string export_net(const std::string& from);

}  // namespace ruche
