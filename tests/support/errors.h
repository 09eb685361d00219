// Reading the message of a user error in tests.
#pragma once

#include <string>

#include "engine/error.h"

namespace ruche::testing {

// The message of the ruche::Error f throws; "" when it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace ruche::testing
