#include "common/thread.h"

#include <pthread.h>

#include <cstring>

namespace fhirstone {

void NameThisThread(const char* name) {
  char shortened[16] = {};
  std::strncpy(shortened, name, sizeof shortened - 1);
  pthread_setname_np(pthread_self(), shortened);
}

}  // namespace fhirstone
