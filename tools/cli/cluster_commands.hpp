#pragma once
// `troupe status` and `troupe nodes`: what the head knows, as tables or JSON.
namespace troupe::cli {
/// argv after the command name; returns the exit code.
int status_command(int argc, char** argv);
int nodes_command(int argc, char** argv);
}  // namespace troupe::cli
