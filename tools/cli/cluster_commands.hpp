#pragma once
// `troupe status`, `troupe nodes` and `troupe actors`: what the head knows, as tables or JSON.
namespace troupe::cli {
/// argv after the command name; returns the exit code.
int status_command(int argc, char** argv);
int nodes_command(int argc, char** argv);
int actors_command(int argc, char** argv);
}  // namespace troupe::cli
