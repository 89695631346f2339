#pragma once
// The cluster commands: what the head knows, as tables or JSON (status,
// nodes, actors, groups, jobs), and `troupe stop`.
namespace troupe::cli {
/// argv after the command name; returns the exit code (status: 3 when unhealthy).
int status_command(int argc, char** argv);
int nodes_command(int argc, char** argv);
int actors_command(int argc, char** argv);
int groups_command(int argc, char** argv);
int jobs_command(int argc, char** argv);
int stop_command(int argc, char** argv);
/// `troupe logs ACTOR|node:N [-f] [--tail N] [--err]`.
int logs_command(int argc, char** argv);
/// `troupe trace [--seconds N] [-o FILE]`: a Chrome trace of every driver and worker.
int trace_command(int argc, char** argv);
}  // namespace troupe::cli
