#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "tests/support/watchdog.hpp"

int main(int argc, char** argv) {
  troupe::test::watchdog::arm();
  return Catch::Session().run(argc, argv);
}
