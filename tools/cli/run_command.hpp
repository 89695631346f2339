#pragma once
// `troupe run TOPOLOGY.toml`: a training run from a topology file.
namespace troupe::cli {
/// argv[0] is "run". Returns the exit status (0: trained; 1: failed; 2: bad input).
int run_command(int argc, char** argv);
}  // namespace troupe::cli
