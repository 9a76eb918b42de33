#include "server/common/flag_spelling.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace leyr {
namespace {

std::vector<std::string> Normalized(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  AcceptHyphenatedFlags(static_cast<int>(argv.size()), argv.data());
  return args;
}

TEST(FlagSpellingTest, HyphensInNamesBecomeUnderscoresAndValuesStay) {
  EXPECT_EQ(Normalized({"bin", "--check-config", "--config=/etc/a-b.json", "-shutdown-delay=1s",
                        "--shutdown_grace", "-5s", "plain-arg", "--", "--not-a-flag"}),
            (std::vector<std::string>{"bin", "--check_config", "--config=/etc/a-b.json",
                                      "-shutdown_delay=1s", "--shutdown_grace", "-5s",
                                      "plain-arg", "--", "--not-a-flag"}));
}

}  // namespace
}  // namespace leyr
