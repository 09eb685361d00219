// RoutedCommunicator: one Communicator over two backends, chosen by each view's device: device
// (CUDA) buffers go to `device` (NCCL), host buffers to `host` (MPI). So the reducer, sync-bn and
// the trainer issue collectives on whatever buffers they hold and never name a backend
// (docs/ARCHITECTURE.md, How ranks talk: the comm API is typed). Barriers and anything without a
// buffer go to the host backend. Both backends must span the same ranks in the same order; they
// must outlive this.
#pragma once

#include "comm/communicator.h"

namespace ruche {

class RoutedCommunicator final : public Communicator {
 public:
  RoutedCommunicator(Communicator& host, Communicator& device);

  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  bool takes_device_buffers() const override { return true; }

 protected:
  Work do_all_reduce(BufferView buffer, ReduceOp op, std::string_view label) override;
  Work do_broadcast(BufferView buffer, int root, std::string_view label) override;
  Work do_all_gather(BufferView send, BufferView recv, std::string_view label) override;
  Work do_reduce_scatter(BufferView send, BufferView recv, ReduceOp op,
                         std::string_view label) override;
  Work do_reduce_scatter_v(BufferView send, BufferView recv, std::vector<std::int64_t> counts,
                           ReduceOp op, std::string_view label) override;
  Work do_all_gather_v(BufferView buffer, std::vector<std::int64_t> counts,
                       std::string_view label) override;
  Work do_barrier(std::string_view label) override;
  void do_begin_group() override;
  void do_end_group() override;

 private:
  Communicator& route(const BufferView& view) { return view.device.is_cuda() ? device_ : host_; }
  // send and recv of one collective must be on the same side.
  Communicator& route(const BufferView& send, const BufferView& recv, const char* op);

  Communicator& host_;
  Communicator& device_;
};

}  // namespace ruche
