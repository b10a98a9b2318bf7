#include "ingest/sources/webhook_signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>
#include <vector>

#include "base/hex.h"

namespace spate::ingest {
namespace {

bool equal_hex_ct(std::string_view expected, std::string_view got) {
  if (expected.size() != got.size()) return false;
  // Case-insensitive hex compare without data-dependent branches.
  std::string g(got);
  for (char& c : g) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  return CRYPTO_memcmp(expected.data(), g.data(), expected.size()) == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string hmac_sha256_hex(std::string_view secret, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  std::string out;
  out.reserve(len * 2);
  append_hex(out, mac, len);
  return out;
}

SignatureCheck verify_signature(SignatureStyle style, std::string_view secret,
                                std::string_view header, std::string_view body, int64_t now_ms,
                                int64_t tolerance_ms) {
  SignatureCheck r;
  if (style == SignatureStyle::kNone) {
    r.ok = true;
    return r;
  }
  header = trim(header);
  if (header.empty()) {
    r.reason = "missing signature header";
    return r;
  }
  if (style == SignatureStyle::kGithub) {
    constexpr std::string_view kPrefix = "sha256=";
    if (header.substr(0, kPrefix.size()) != kPrefix) {
      r.reason = "signature must look like sha256=<hex>";
      return r;
    }
    r.ok = equal_hex_ct(hmac_sha256_hex(secret, body), header.substr(kPrefix.size()));
    if (!r.ok) r.reason = "signature does not match";
    return r;
  }
  // Timestamped: t=...,v1=...[,v1=...]
  std::string_view t;
  bool have_t = false;
  std::vector<std::string_view> sigs;
  size_t pos = 0;
  while (pos <= header.size()) {
    size_t comma = header.find(',', pos);
    if (comma == std::string_view::npos) comma = header.size();
    std::string_view part = trim(header.substr(pos, comma - pos));
    size_t eq = part.find('=');
    if (eq != std::string_view::npos) {
      std::string_view k = part.substr(0, eq), v = part.substr(eq + 1);
      if (k == "t") {
        t = v;
        have_t = true;
      } else if (k == "v1") {
        sigs.push_back(v);
      }
    }
    pos = comma + 1;
  }
  if (!have_t || sigs.empty() || t.empty() || t.size() > 12) {
    r.reason = "signature must look like t=<unix seconds>,v1=<hex>";
    return r;
  }
  int64_t ts = 0;
  for (char c : t) {
    if (c < '0' || c > '9') {
      r.reason = "signature timestamp is not a number";
      return r;
    }
    ts = ts * 10 + (c - '0');
  }
  r.timestamp = ts;
  if (std::llabs(now_ms - ts * 1000) > tolerance_ms) {
    r.reason = "signature timestamp outside the tolerance window (replay or clock skew)";
    return r;
  }
  std::string signed_payload;
  signed_payload.reserve(t.size() + 1 + body.size());
  signed_payload.append(t).append(".").append(body);
  std::string expected = hmac_sha256_hex(secret, signed_payload);
  bool any = false;
  for (std::string_view s : sigs) any |= equal_hex_ct(expected, s);  // check all: constant work
  r.ok = any;
  if (!r.ok) r.reason = "signature does not match";
  return r;
}

}  // namespace spate::ingest
