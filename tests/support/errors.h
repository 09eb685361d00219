// Reading the message of a user error in tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

// The message of the InternalError f throws (a broken invariant, such as two layouts in one op
// call); "" when it throws none.
template <typename F>
std::string internal_error_of(F&& f) {
  try {
    f();
  } catch (const InternalError& e) {
    return e.what();
  }
  return "";
}

// Expects f to throw a ruche::Error whose message contains every one of `parts`.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no ruche::Error thrown";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const auto& part : parts) {
      EXPECT_NE(what.find(part), std::string::npos) << "'" << part << "' not in: " << what;
    }
  }
}

}  // namespace ruche::testing
