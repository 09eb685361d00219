// The MPI handles behind a World; included by comm/ sources only.
#pragma once

#include <mpi.h>

#include "comm/world.h"

namespace ruche {

struct World::Handles {
  MPI_Comm world = MPI_COMM_NULL;  // a duplicate of MPI_COMM_WORLD
  MPI_Comm local = MPI_COMM_NULL;  // the ranks of this node (real or pretend)
};

}  // namespace ruche
