// A configuration's choices are enums: a word written as text in C++ (where a
// typo would only fail at run time) is refused where it is written. The words
// are for topology files; parse_enum<optim::Algorithm>("adamw") reads one.
// expect: cannot convert
// expect: troupe::optim::Algorithm
#include "actors/training.hpp"

int main() {
  troupe::train::TrainConfig cfg;
  cfg.optimizer = "adamw";  // error here
}
