#pragma once
// troupe::init: the first line of a driver's main().
//
// A driver's executable is re-run as the worker process for its process
// actors; in that role init() hosts the actor and never returns. In the
// driver itself it picks the cluster: `--address HOST:PORT` on the command
// line (removed from argv) or $TROUPE_ADDRESS joins a running cluster; with
// neither, the first process actor starts an embedded head and node inside
// the driver's process.
namespace troupe {
void init(int& argc, char** argv);
}  // namespace troupe
