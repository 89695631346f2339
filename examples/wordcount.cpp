// wordcount: a map/reduce driver program built from actors.
//
// A mesh of mapper actors counts words in chunks of text; each map result is
// passed, as a Ref, straight into the reducer's merge call, so the driver never
// waits in the middle. A monitor reports any actor that dies. The result is
// checked against a single-threaded count.
//
//   wordcount [--top K] [--mappers N] FILE...
//   (no files: the licence texts in /usr/share/common-licenses)
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "runtime/troupe.hpp"

using Counts = std::map<std::string, long>;

Counts count_words(const std::string& text) {
  Counts c;
  std::string word;
  for (char ch : text) {
    if (std::isalpha(static_cast<unsigned char>(ch))) {
      word.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
    } else if (!word.empty()) {
      ++c[word];
      word.clear();
    }
  }
  if (!word.empty()) ++c[word];
  return c;
}

class Mapper {
 public:
  Counts count(std::string chunk) {
    ++chunks_;
    return count_words(chunk);
  }
  int chunks() const { return chunks_; }

 private:
  int chunks_ = 0;
};

class Reducer {
 public:
  void merge(const Counts& part) {
    for (const auto& [w, n] : part) totals_[w] += n;
  }
  std::vector<std::pair<std::string, long>> top(int k) const {
    std::vector<std::pair<std::string, long>> v(totals_.begin(), totals_.end());
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
    if (static_cast<int>(v.size()) > k) v.resize(k);
    return v;
  }
  Counts totals() const { return totals_; }

 private:
  Counts totals_;
};

std::vector<std::string> chunks_of(const std::string& text, std::size_t size) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = std::min(text.size(), pos + size);
    while (end < text.size() && std::isalpha(static_cast<unsigned char>(text[end]))) ++end;  // no split words
    out.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

int main(int argc, char** argv) {
  int top_k = 10, mappers = 4;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--top" || a == "--mappers") && i + 1 < argc) {
      int v = std::atoi(argv[++i]);
      if (v <= 0) {
        fmt::print(stderr, "wordcount: {} needs a positive number\n", a);
        return 2;
      }
      (a == "--top" ? top_k : mappers) = v;
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) {
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator("/usr/share/common-licenses", ec))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
  }
  std::string text;
  for (auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      fmt::print(stderr, "wordcount: cannot read '{}'\n", f);
      return 1;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    text += ss.str();
    text += '\n';
  }

  troupe::Runtime rt;
  auto mesh = rt.spawn_mesh<Mapper>(mappers, troupe::Options{}.name("mapper"));
  auto reducer = rt.spawn<Reducer>(troupe::Options{}.name("reducer"));
  for (auto& m : mesh.members())
    rt.monitor(m, [](const troupe::DownEvent& e) {
      if (e.cause == troupe::DeathCause::failed) fmt::print(stderr, "actor {} failed: {}\n", e.name, e.detail);
    });

  auto chunks = chunks_of(text, 64 * 1024);
  std::vector<troupe::Ref<void>> merged;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    auto part = mesh.call_one(i % mesh.size(), &Mapper::count, std::move(chunks[i]));
    merged.push_back(reducer.call(&Reducer::merge, part));  // Ref argument: resolved by the runtime
  }
  troupe::when_all(std::move(merged)).get();
  auto top = reducer.call(&Reducer::top, top_k).get();
  auto per_mapper = mesh.call(&Mapper::chunks).get();

  fmt::print("{} files, {} bytes, {} chunks over {} mappers (chunks per mapper:", files.size(), text.size(),
             chunks.size(), mesh.size());
  for (int c : per_mapper) fmt::print(" {}", c);
  fmt::print(")\n");
  for (auto& [w, n] : top) fmt::print("{:>10}  {}\n", n, w);

  bool ok = reducer.call(&Reducer::totals).get() == count_words(text);
  fmt::print("check against a single-threaded count: {}\n", ok ? "ok" : "MISMATCH");
  mesh.stop().get();
  reducer.stop().get();
  return ok ? 0 : 1;
}
