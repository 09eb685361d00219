# Runs COMMAND (a list) and passes when it exits with EXIT_CODE, prints a line matching EXPECT,
# and takes at most MAX_SECONDS (a guard against a watchdog that waits too long).
#   cmake -DCOMMAND=... -DEXIT_CODE=70 -DEXPECT=regex -DMAX_SECONDS=30 -P expect_abort.cmake
string(REPLACE "|" ";" COMMAND "${COMMAND}")
string(TIMESTAMP start "%s")
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE out
                TIMEOUT 120)
string(TIMESTAMP end "%s")
math(EXPR took "${end} - ${start}")
message("${out}")
message("exit ${code} after ${took} s")
if(NOT "${code}" STREQUAL "${EXIT_CODE}")
  message(FATAL_ERROR "expected exit ${EXIT_CODE}, got ${code}")
endif()
if(NOT "${out}" MATCHES "${EXPECT}")
  message(FATAL_ERROR "expected a line matching: ${EXPECT}")
endif()
if(took GREATER MAX_SECONDS)
  message(FATAL_ERROR "took ${took} s, more than ${MAX_SECONDS}")
endif()
