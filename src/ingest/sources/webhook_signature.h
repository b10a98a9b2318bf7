// Webhook signature verification (HMAC-SHA256), in the two common styles:
//  - "github":      header `X-Hub-Signature-256: sha256=<hex HMAC(secret, body)>`
//  - "timestamped": header `t=<unix seconds>,v1=<hex HMAC(secret, "<t>.<body>")>[,v1=...]`
//                   accepted only within `tolerance_ms` of now (rejects replays of old requests)
// Comparison is constant-time. Pure functions, thread-safe; the header text is untrusted input.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace spate::ingest {

enum class SignatureStyle { kGithub, kTimestamped, kNone };

struct SignatureCheck {
  bool ok = false;
  std::string reason;      // why not, for logs and the 401 body (never includes the secret)
  int64_t timestamp = 0;   // timestamped style: the signed time (unix seconds)
};

/// Lower-case hex HMAC-SHA256 of `data` under `secret`.
std::string hmac_sha256_hex(std::string_view secret, std::string_view data);

/// Verify `header` (the signature header's value) for `body`. `now_ms` is the current time.
SignatureCheck verify_signature(SignatureStyle style, std::string_view secret,
                                std::string_view header, std::string_view body, int64_t now_ms,
                                int64_t tolerance_ms);

}  // namespace spate::ingest
