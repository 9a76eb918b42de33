#ifndef LEYR_SERVER_COMMON_FLAG_SPELLING_H_
#define LEYR_SERVER_COMMON_FLAG_SPELLING_H_

#include <cstring>

namespace leyr {

// Lets every flag be spelled with hyphens as well as underscores (`--check-config` is
// `--check_config`): Abseil's flags know only the underscore names. Only the name part of each
// `--name[=value]` argument before a lone `--` is rewritten, in place; values are untouched.
inline void AcceptHyphenatedFlags(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    char* arg = argv[i];
    if (std::strcmp(arg, "--") == 0) return;
    if (arg[0] != '-') continue;
    char* name = arg + (arg[1] == '-' ? 2 : 1);
    for (char* c = name; *c != '\0' && *c != '='; ++c) {
      if (*c == '-' && c != name) *c = '_';
    }
  }
}

}  // namespace leyr

#endif  // LEYR_SERVER_COMMON_FLAG_SPELLING_H_
