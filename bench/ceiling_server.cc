// bench_ceiling_server: this machine's ceiling for the read benchmark. The same HTTP server
// library (Beast, the same threads and options) answering every request with the same bytes,
// no routing, no database. Usage: bench_ceiling_server PORT THREADS BODY_FILE
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "http/server.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: bench_ceiling_server PORT THREADS BODY_FILE\n");
    return 2;
  }
  std::ifstream in(argv[3]);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string body = buffer.str();
  fhirstone::http::ServerOptions options;
  options.port = static_cast<uint16_t>(std::atoi(argv[1]));
  options.threads = std::atoi(argv[2]);
  auto server = fhirstone::http::Server::Start(
      options,
      [&body](fhirstone::http::Request&) {
        fhirstone::http::Response response;
        response.SetHeader("Content-Type", "application/fhir+json;charset=utf-8");
        response.SetHeader("ETag", "W/\"1\"");
        response.body = body;
        return response;
      },
      [](int status, std::string_view) {
        fhirstone::http::Response response;
        response.status = status;
        return response;
      });
  if (!server) {
    std::fprintf(stderr, "%s\n", server.error().message().c_str());
    return 1;
  }
  (*server)->WaitForSignal();
  (*server)->Stop();
  return 0;
}
