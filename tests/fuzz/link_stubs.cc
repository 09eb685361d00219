// The libFuzzer build only (tests/fuzz/CMakeLists.txt): definitions that the parsers' translation
// units reference from code the targets never run, so the fuzz build need not compile the
// optimizer and its ops. Reaching one is a harness bug: it aborts.
#include <cstdlib>

#include "engine/optim/optimizer.h"

namespace ruche {

// engine/checkpoint/state_layout.cc (a net's layout, not a checkpoint read from disk).
std::vector<std::pair<std::string, Tensor*>> Optimizer::slots() { std::abort(); }

}  // namespace ruche
