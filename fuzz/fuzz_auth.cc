// Fuzz target: the authentication of the HTTP API (src/server/auth.h) on any request line and
// Authorization / X-API-Key header. Input: METHOD \n PATH \n AUTHORIZATION \n X-API-KEY. Any input
// must be decided without crashing; a request refused is 401 or 403; and only the configured
// admin token, exactly, passes a path that needs admin.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "server/auth.h"

namespace {
constexpr std::string_view kAdmin = "fuzz-admin-token-0123456789";

const spate::Authenticator& authenticator() {
  static spate::MetricsRegistry metrics;
  static const spate::Authenticator a = [] {
    spate::AuthConfig c;
    c.enabled = true;
    c.tokens.push_back({"admin", std::string(kAdmin), {"admin"}});
    c.tokens.push_back({"orders", "fuzz-ingest-token-0123456789", {"ingest:orders"}});
    c.tokens.push_back({"read", "fuzz-read-token-0123456789ab", {"read"}});
    return spate::Authenticator(c, &metrics);
  }();
  return a;
}

std::string_view next(std::string_view& in) {
  const size_t nl = in.find('\n');
  std::string_view out = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  spate::HttpRequest req;
  req.method = std::string(next(in));
  req.path = std::string(next(in));
  const std::string_view authz = next(in);
  const std::string_view key = next(in);
  if (!authz.empty()) req.headers["authorization"] = std::string(authz);
  if (!key.empty()) req.headers["x-api-key"] = std::string(key);
  const auto& a = authenticator();
  const auto r = a.check(req);
  if (r && r->status != 401 && r->status != 403) __builtin_trap();
  if (!r && a.required_scope(req.method, req.path) == "admin") {
    // The token, by the rule of auth.h: "Bearer T" (scheme in any case, spaces after it), else X-API-Key.
    bool bearer = authz.size() > 7;
    for (size_t i = 0; bearer && i < 7; ++i) bearer = std::tolower(static_cast<unsigned char>(authz[i])) == "bearer "[i];
    std::string_view tok = key;
    if (bearer) {
      tok = authz.substr(7);
      while (!tok.empty() && tok.front() == ' ') tok.remove_prefix(1);
    }
    if (tok != kAdmin) __builtin_trap();  // only the admin token passes an admin path
  }
  return 0;
}
