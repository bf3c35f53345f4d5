// Dataset: the Synthea small-10 sample (../shared/data/synthea/small-10) read into memory as the
// resources a client would store on a server without transaction support: the two batch bundles
// of organizations/locations and practitioners first, then the ten patient transaction bundles.
// Each entry's id is the uuid of its fullUrl, and every reference is rewritten to a relative
// "Type/id": "urn:uuid:X" through the fullUrls of all files, conditional references
// ("Practitioner?identifier=SYSTEM|VALUE") through the identifiers of the resources loaded from
// the two batch bundles; "#contained" references stay as they are.
// The Dataset owns its resources (addresses are stable); it is immutable after loading and can be
// read from several threads.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/json.h"
#include "common/result.h"

namespace fhirstone::differential {

class Dataset {
 public:
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;

  // Every resource, in load order (the order in which they must be written).
  const std::deque<json::Value>& resources() const { return resources_; }
  // The resources of `type`, in load order; empty when there are none.
  const std::vector<const json::Value*>& OfType(std::string_view type) const;
  // The resource with this type and id, or nullptr.
  const json::Value* Find(std::string_view type, std::string_view id) const;
  // The resource types present, sorted.
  std::vector<std::string> Types() const;
  // How many references the loader rewrote, by kind ("urn:uuid", "conditional").
  const std::map<std::string, int>& rewritten() const { return rewritten_; }

  // Reads the Synthea bundles of `dir`. Fails when a file cannot be read or parsed, or when a
  // reference cannot be rewritten.
  static Result<std::unique_ptr<Dataset>> LoadSynthea(const std::string& dir);

 private:
  Dataset() = default;

  std::deque<json::Value> resources_;
  std::map<std::string, std::vector<const json::Value*>, std::less<>> by_type_;
  std::unordered_map<std::string, const json::Value*> by_key_;  // "Type/id"
  std::map<std::string, int> rewritten_;
};

}  // namespace fhirstone::differential
