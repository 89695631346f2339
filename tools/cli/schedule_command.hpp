#pragma once
// `troupe schedule`: a pipeline schedule generated or read from a file,
// checked as the pipeline trainer will check it before launch, with its
// simulated bubble and memory.
namespace troupe::cli {
/// argv[0] is "schedule". Returns the exit status (0: the schedule runs; 2: refused or bad input).
int schedule_command(int argc, char** argv);
}  // namespace troupe::cli
