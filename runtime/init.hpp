#pragma once
// troupe::init: the first line of a driver's main().
//
// A driver's executable is re-run as the worker process for its process
// actors; in that role init() hosts the actor and never returns. In the
// driver itself it returns at once.
namespace troupe {
void init(int argc, char** argv);
}  // namespace troupe
