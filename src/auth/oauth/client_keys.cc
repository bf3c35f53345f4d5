#include "auth/oauth/client_keys.h"

#include "common/json.h"
#include "http/client.h"

namespace fhirstone::oauth {
namespace {

constexpr int64_t kCacheSeconds = 600;
constexpr int64_t kRefetchSeconds = 60;
constexpr size_t kMaxCachedClients = 1000;

bool HasKid(const jose::KeySet& keys, const std::string& kid) {
  json::Value jwks = keys.ToJwks();
  const json::Value* list = jwks.Find("keys");
  if (!list || !list->is_array()) return false;
  for (const auto& k : list->as_array())
    if (k.GetString("kid") == kid) return true;
  return false;
}

}  // namespace

bool IsAcceptableJwksUri(std::string_view uri) {
  if (uri.starts_with("https://")) return uri.size() > 8;
  for (const char* loopback : {"http://127.0.0.1:", "http://127.0.0.1/",
                               "http://localhost:", "http://localhost/", "http://[::1]:"})
    if (uri.starts_with(loopback)) return true;
  return false;
}

ClientKeys::ClientKeys(Clock& clock, Fetcher fetcher)
    : clock_(clock), fetcher_(std::move(fetcher)) {
  if (!fetcher_) {
    fetcher_ = [](const std::string& url) -> Result<std::string> {
      http::FetchOptions options;
      options.timeout = std::chrono::milliseconds(5000);
      options.max_body_bytes = 256 * 1024;
      auto response = http::Get(url, options);
      if (!response) return std::move(response).error();
      if (response->status != 200)
        return Error::Unavailable("the jwks_uri answered " + std::to_string(response->status));
      return std::move(response->body);
    };
  }
}

Result<jose::KeySet> ClientKeys::Fetch(const std::string& url) {
  auto body = fetcher_(url);
  if (!body) return std::move(body).error();
  auto jwks = json::Parse(*body);
  if (!jwks) return Error::Unavailable("the jwks_uri did not answer JSON");
  return jose::KeySet::FromJwks(*jwks);
}

Result<jose::KeySet> ClientKeys::For(const Client& client, const std::string& kid) {
  if (!client.jwks.empty()) {
    auto jwks = json::Parse(client.jwks);
    if (!jwks) return Error::Internal("the client's registered keys are unreadable");
    return jose::KeySet::FromJwks(*jwks);
  }
  if (client.jwks_uri.empty()) return Error::Unauthorized("the client has no registered keys");
  int64_t now = clock_.NowMicros() / 1000000;
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(client.jwks_uri);
    if (it != cache_.end()) {
      bool fresh = now - it->second.fetched < kCacheSeconds;
      bool may_refetch = now - it->second.fetched >= kRefetchSeconds;
      if (fresh && (HasKid(it->second.keys, kid) || !may_refetch)) return it->second.keys;
    }
  }
  // Fetched outside the lock: a slow jwks_uri delays only its own client.
  auto keys = Fetch(client.jwks_uri);
  if (!keys) return std::move(keys).error();
  std::lock_guard lock(mu_);
  if (cache_.size() >= kMaxCachedClients) cache_.clear();
  cache_[client.jwks_uri] = Entry{*keys, now};
  return keys;
}

}  // namespace fhirstone::oauth
