#include "comm/routed_communicator.h"

#include <utility>

#include "engine/error.h"

namespace ruche {

RoutedCommunicator::RoutedCommunicator(Communicator& host, Communicator& device)
    : host_(host),
      device_(device) {
  RUCHE_CHECK(host.rank() == device.rank() && host.size() == device.size())
      << "RoutedCommunicator: the host backend is rank " << host.rank() << " of " << host.size()
      << ", the device backend rank " << device.rank() << " of " << device.size();
  RUCHE_CHECK(device.takes_device_buffers())
      << "RoutedCommunicator: the device backend does not take device buffers";
}

Communicator& RoutedCommunicator::route(const BufferView& send, const BufferView& recv,
                                        const char* op) {
  RUCHE_REQUIRE(send.device.is_cuda() == recv.device.is_cuda())
      << op << ": send " << send.str() << " and receive " << recv.str()
      << " must both be host or both be device memory";
  return route(send);
}

Work RoutedCommunicator::do_all_reduce(BufferView buffer, ReduceOp op, std::string_view label) {
  return route(buffer).all_reduce(buffer, op, label);
}

Work RoutedCommunicator::do_broadcast(BufferView buffer, int root, std::string_view label) {
  return route(buffer).broadcast(buffer, root, label);
}

Work RoutedCommunicator::do_all_gather(BufferView send, BufferView recv, std::string_view label) {
  return route(send, recv, "all_gather").all_gather(send, recv, label);
}

Work RoutedCommunicator::do_reduce_scatter(BufferView send, BufferView recv, ReduceOp op,
                                           std::string_view label) {
  return route(send, recv, "reduce_scatter").reduce_scatter(send, recv, op, label);
}

Work RoutedCommunicator::do_reduce_scatter_v(BufferView send, BufferView recv,
                                             std::vector<std::int64_t> counts, ReduceOp op,
                                             std::string_view label) {
  return route(send, recv, "reduce_scatter_v")
      .reduce_scatter_v(send, recv, std::move(counts), op, label);
}

Work RoutedCommunicator::do_all_gather_v(BufferView buffer, std::vector<std::int64_t> counts,
                                         std::string_view label) {
  return route(buffer).all_gather_v(buffer, std::move(counts), label);
}

Work RoutedCommunicator::do_barrier(std::string_view label) { return host_.barrier(label); }

void RoutedCommunicator::do_begin_group() { device_.begin_group(); }
void RoutedCommunicator::do_end_group() { device_.end_group(); }

}  // namespace ruche
