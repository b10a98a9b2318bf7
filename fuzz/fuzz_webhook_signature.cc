// Fuzz target: webhook signature verification (src/ingest/sources/webhook_signature.h) on any
// signature header and body, in both styles. Input: STYLE-BYTE HEADER \n BODY. Must never crash;
// a random header must not verify (only a header made with the secret does), and the header made
// here from the same input with the secret always does: a parser that accepted garbage or
// refused the real thing would trap.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ingest/sources/webhook_signature.h"

namespace {
constexpr std::string_view kSecret = "fuzz-webhook-secret";
constexpr int64_t kNowMs = 1'700'000'000'000;
constexpr int64_t kToleranceMs = 300'000;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using spate::ingest::SignatureStyle;
  if (size == 0) return 0;
  const SignatureStyle style = (data[0] & 1) != 0 ? SignatureStyle::kTimestamped : SignatureStyle::kGithub;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t nl = rest.find('\n');
  const std::string_view header = rest.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);

  auto r = spate::ingest::verify_signature(style, kSecret, header, body, kNowMs, kToleranceMs);
  if (!r.ok && r.reason.empty()) __builtin_trap();  // a refusal always says why
  if (r.reason.find(kSecret) != std::string::npos) __builtin_trap();  // and never leaks the secret
  if (r.ok) {
    // Accepted: the header must carry the true HMAC of what was signed.
    const std::string want_body = spate::ingest::hmac_sha256_hex(kSecret, body);
    const std::string want_ts =
        spate::ingest::hmac_sha256_hex(kSecret, std::to_string(r.timestamp) + "." + std::string(body));
    const std::string_view want = style == SignatureStyle::kGithub ? want_body : want_ts;
    // Hex digits compare case-insensitively (found by this target: "D" for "d" is accepted).
    std::string lower(header);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.find(want) == std::string::npos) __builtin_trap();
    if (style == SignatureStyle::kTimestamped &&
        (r.timestamp * 1000 < kNowMs - kToleranceMs || r.timestamp * 1000 > kNowMs + kToleranceMs)) {
      __builtin_trap();  // outside the tolerance: a replay let through
    }
  }

  // The genuine header for this body verifies.
  std::string good;
  if (style == SignatureStyle::kGithub) {
    good = "sha256=" + spate::ingest::hmac_sha256_hex(kSecret, body);
  } else {
    const std::string ts = std::to_string(kNowMs / 1000);
    good = "t=" + ts + ",v1=" + spate::ingest::hmac_sha256_hex(kSecret, ts + "." + std::string(body));
  }
  if (!spate::ingest::verify_signature(style, kSecret, good, body, kNowMs, kToleranceMs).ok) __builtin_trap();
  return 0;
}
