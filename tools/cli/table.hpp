#pragma once
// The cluster commands' shared parts: flags, rows filtered before they are
// limited (Ray's `--limit` applies first and rows vanish silently: here the
// filter comes first and a line says how many rows were left out), tables
// and JSON.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/cluster/resources.hpp"
#include "runtime/detail/json.hpp"

namespace troupe::cli {

struct Filter {
  std::string key, value;
  bool negate = false;  ///< key!=value
};

struct ListFlags {
  std::string address, token, token_file;
  bool json = false;
  std::vector<Filter> filters;
  std::size_t limit = 100;  ///< 0: every row
  bool limit_given = false;
};

/// --address, --token, --token-file, --json; with `lists`, also --filter
/// KEY=VALUE / KEY!=VALUE (repeatable) and --limit N. UsageError names a bad one.
ListFlags parse_flags(int argc, char** argv, bool lists);

struct Column {
  std::string key;        ///< what --filter names
  std::string title;      ///< "" : filterable, not shown
  int width = 0;          ///< 0: as wide as its widest cell (the last column: free)
  bool right = false;
};

struct Row {
  std::vector<std::string> cells;  ///< by column: what the table shows
  std::vector<std::string> raw;    ///< by column: what filters compare (case-insensitive)
  std::string json;                ///< the row as a JSON object
};

/// Filters, then limits, then prints (a table, or a JSON array); the note on
/// rows left out goes to stdout after a table, to stderr after JSON.
void print_rows(const std::vector<Column>& cols, const std::vector<Row>& rows, const ListFlags& f,
                const std::string& what);
/// The table's lines: the header, then one per row (each cut at max_width, 0: not).
std::vector<std::string> render(const std::vector<Column>& cols, const std::vector<const Row*>& rows,
                                std::size_t max_width = 0);
/// The rows that pass every filter (UsageError for a key no column has).
std::vector<const Row*> filtered(const std::vector<Column>& cols, const std::vector<Row>& rows,
                                 const std::vector<Filter>& filters, const std::string& what);

using troupe::detail::json_string;
std::string json_resources(const cluster::ResourceMap& r);
std::string json_number(double v);  ///< finite, else null
/// A cell on one line: a multi-line cause joined with " | ".
std::string one_line(const std::string& s);
std::string amount(const std::string& resource, double v);  ///< memory in GiB
std::string bytes(std::uint64_t b);                         ///< "1.2GiB", "340MiB", "-" for 0
std::string duration(double seconds);                       ///< "3.2s", "4m05s", "2h03m"
std::string ago(std::uint64_t ms);                          ///< "12s ago"

}  // namespace troupe::cli
