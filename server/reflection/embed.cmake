# cmake -DIN=file -DOUT=file.cc -P embed.cmake: writes IN's bytes as a C++ array.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "// Generated from ${IN} by embed.cmake.\n#include <cstddef>\nnamespace leyr {\n"
  "extern const unsigned char kApiDescriptorSet[] = {${bytes}};\n"
  "extern const size_t kApiDescriptorSetSize = sizeof(kApiDescriptorSet);\n}  // namespace leyr\n")
