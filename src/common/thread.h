// Threads of the server: each background thread names itself, so that `top -H`, `ps -L` and
// profilers tell them apart (the audit writer from the request threads, for instance).
#pragma once

namespace fhirstone {

// Names the calling thread; Linux keeps the first 15 bytes.
void NameThisThread(const char* name);

}  // namespace fhirstone
