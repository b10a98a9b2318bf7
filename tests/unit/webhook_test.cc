// Webhook signature verification and source option validation.
#include <gtest/gtest.h>

#include "ingest/source.h"
#include "ingest/sources/webhook_signature.h"

namespace spate::ingest {
namespace {

TEST(WebhookSignatureTest, HmacMatchesGithubsDocumentedExample) {
  // From GitHub's "Validating webhook deliveries" documentation.
  EXPECT_EQ(hmac_sha256_hex("It's a Secret to Everybody", "Hello, World!"),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
}

TEST(WebhookSignatureTest, GithubStyle) {
  const std::string body = R"({"action":"opened"})";
  const std::string good = "sha256=" + hmac_sha256_hex("s3cret", body);
  EXPECT_TRUE(verify_signature(SignatureStyle::kGithub, "s3cret", good, body, 0, 0).ok);
  std::string upper = good;
  for (size_t i = 7; i < upper.size(); ++i) upper[i] = static_cast<char>(std::toupper(upper[i]));
  EXPECT_TRUE(verify_signature(SignatureStyle::kGithub, "s3cret", upper, body, 0, 0).ok);
  auto wrong_secret = verify_signature(SignatureStyle::kGithub, "other", good, body, 0, 0);
  EXPECT_FALSE(wrong_secret.ok);
  EXPECT_EQ(wrong_secret.reason, "signature does not match");
  EXPECT_FALSE(verify_signature(SignatureStyle::kGithub, "s3cret", good, body + " ", 0, 0).ok);
  EXPECT_EQ(verify_signature(SignatureStyle::kGithub, "s3cret", "", body, 0, 0).reason,
            "missing signature header");
  EXPECT_FALSE(verify_signature(SignatureStyle::kGithub, "s3cret", "sha1=abc", body, 0, 0).ok);
  EXPECT_FALSE(verify_signature(SignatureStyle::kGithub, "s3cret", good.substr(0, 20), body, 0, 0).ok);
}

TEST(WebhookSignatureTest, TimestampedStyleWithToleranceWindow) {
  const std::string body = R"({"id":"evt_1"})";
  const int64_t t = 1'795'000'000;
  const std::string sig = hmac_sha256_hex("whsec", std::to_string(t) + "." + body);
  const std::string header = "t=" + std::to_string(t) + ",v1=" + sig;
  const int64_t now = t * 1000;
  const int64_t tol = 300'000;
  auto ok = verify_signature(SignatureStyle::kTimestamped, "whsec", header, body, now + 1000, tol);
  EXPECT_TRUE(ok.ok) << ok.reason;
  EXPECT_EQ(ok.timestamp, t);
  // Several v1 values (secret rotation): any may match.
  EXPECT_TRUE(verify_signature(SignatureStyle::kTimestamped, "whsec",
                               "t=" + std::to_string(t) + ",v1=deadbeef,v1=" + sig, body, now, tol)
                  .ok);
  auto old = verify_signature(SignatureStyle::kTimestamped, "whsec", header, body, now + tol + 1, tol);
  EXPECT_FALSE(old.ok);
  EXPECT_NE(old.reason.find("tolerance"), std::string::npos);
  EXPECT_FALSE(verify_signature(SignatureStyle::kTimestamped, "whsec", header, body, now - tol - 1, tol).ok);
  // The timestamp is signed: changing it breaks the signature.
  EXPECT_FALSE(verify_signature(SignatureStyle::kTimestamped, "whsec",
                                "t=" + std::to_string(t + 1) + ",v1=" + sig, body, now, tol)
                   .ok);
  for (const std::string& bad : std::vector<std::string>{"", "v1=" + sig, "t=,v1=" + sig, "t=abc,v1=" + sig,
                          "t=" + std::to_string(t), "garbage", "t=99999999999999999999,v1=x"}) {
    EXPECT_FALSE(verify_signature(SignatureStyle::kTimestamped, "whsec", bad, body, now, tol).ok) << bad;
  }
}

SourceConfig webhook_cfg(std::map<std::string, std::string, std::less<>> opts) {
  SourceConfig c;
  c.type = "webhook";
  c.name = "gh";
  c.file = "p.yaml";
  c.line = 3;
  c.column = 5;
  c.path = "ingestion.sources[0]";
  int line = 4;
  for (auto& [k, v] : opts) {
    SourceOption o;
    o.value = v;
    o.line = line++;
    o.column = 7;
    c.options.emplace(k, o);
  }
  return c;
}

TEST(WebhookSourceConfigTest, OptionsAreValidatedWithPositions) {
  register_builtin_sources();
  const SourceType* t = find_source_type("webhook");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->validate(webhook_cfg({{"secret", "x"}})).ok());
  EXPECT_TRUE(t->validate(webhook_cfg({{"signature", "none"}})).ok());
  EXPECT_EQ(t->validate(webhook_cfg({})).message(),
            "p.yaml:3:5: ingestion.sources[0].secret: missing required option");
  EXPECT_EQ(t->validate(webhook_cfg({{"secret", "x"}, {"signature", "gitlab"}})).message(),
            "p.yaml:5:7: ingestion.sources[0].signature: expected one of github, timestamped, "
            "none, got \"gitlab\" (did you mean \"github\"?)");
  EXPECT_EQ(t->validate(webhook_cfg({{"secret", "x"}, {"tolerence", "5m"}})).message(),
            "p.yaml:5:7: ingestion.sources[0].tolerence: unknown option for a webhook source "
            "(did you mean \"tolerance\"?)");
  IngestionConfig ic;
  auto bad = webhook_cfg({});
  bad.type = "webhok";
  ic.sources.push_back(bad);
  EXPECT_NE(validate_sources(ic).message().find("unknown source type \"webhok\" (did you mean \"webhook\"?"),
            std::string::npos)
      << validate_sources(ic).message();
}

}  // namespace
}  // namespace spate::ingest
