# Writes a C++ source defining fhirstone::sandbox::LauncherScript() with the bytes of INPUT as a
# raw string literal. Run as: cmake -DINPUT=launcher.js -DOUTPUT=launcher_js.cc -P embed_script.cmake
file(READ "${INPUT}" script)
string(FIND "${script}" ")js\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw string delimiter )js\"")
endif()
file(WRITE "${OUTPUT}.tmp"
"// Generated from src/sandbox/launcher.js by embed_script.cmake. Do not edit.
#include <string_view>

namespace fhirstone::sandbox {

std::string_view LauncherScript() {
  static constexpr std::string_view kScript = R\"js(${script})js\";
  return kScript;
}

}  // namespace fhirstone::sandbox
")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
