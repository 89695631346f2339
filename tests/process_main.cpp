// Test main for suites that spawn process actors: the binary is re-run as
// the worker, and troupe::init() turns it into one before Catch starts.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "runtime/init.hpp"
#include "tests/support/watchdog.hpp"

int main(int argc, char** argv) {
  troupe::init(argc, argv);
  troupe::test::watchdog::arm();  // after init: a worker run of this binary never gets here
  return Catch::Session().run(argc, argv);
}
