// MPI_CHECK(call): throws ruche::InternalError naming the call, file, line and MPI's message.
#pragma once

#include <mpi.h>

#include <string>

#include "engine/error.h"

namespace ruche::detail {

inline std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<std::size_t>(length));
}

}  // namespace ruche::detail

#define MPI_CHECK(call)                                                                     \
  do {                                                                                      \
    int mpi_check_code_ = (call);                                                           \
    if (mpi_check_code_ != MPI_SUCCESS)                                                     \
      ::ruche::detail::Thrower<::ruche::InternalError>("MPI call failed: " #call, __FILE__, \
                                                       __LINE__)                            \
          << ::ruche::detail::mpi_error_string(mpi_check_code_);                            \
  } while (0)
