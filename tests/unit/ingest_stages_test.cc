// Ingestion stages between decoding and routing: data-quality checks (validate/quality) and
// transform rules (transform/), configured from YAML as a user writes them.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <vector>

#include "ingest/transform/json_edit.h"
#include "ingest/transform/transform.h"
#include "ingest/validate/quality.h"
#include "spate/config.h"

namespace spate {
namespace {

using ingest::JsonEdit;
using ingest::QualityChecks;
using ingest::TransformChain;

IngestionConfig ingestion_of(const std::string& yaml) {
  auto r = load_pipeline_string("ingestion:\n" + yaml, "p.yaml");
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? r->ingestion : IngestionConfig{};
}

std::string config_error(const std::string& yaml) {
  auto r = load_pipeline_string("ingestion:\n" + yaml, "p.yaml");
  if (!r.ok()) return r.status().message();
  auto q = QualityChecks::compile(r->ingestion.quality, r->ingestion.timestamp_field, true);
  if (!q.ok()) return q.status().message();
  auto t = TransformChain::compile(r->ingestion.transforms);
  if (!t.ok()) return t.status().message();
  return "";
}

// ---------------------------------------------------------------- JsonEdit

std::string edited(const std::string& json, const std::function<void(JsonEdit&)>& f) {
  simdjson::dom::parser p;
  simdjson::dom::element doc = p.parse(json).value();
  JsonEdit e;
  e.reset(doc);
  f(e);
  std::string out;
  e.write(out);
  return out;
}

TEST(JsonEditTest, UntouchedEventIsMinifiedWithTypesKept) {
  EXPECT_EQ(edited(R"({ "a" : 1, "b": [1.0, -2.5e-3, "x\"y\n"], "c": {"d": null, "e": true},
                     "u": 18446744073709551615, "big": 1e300 })",
                   [](JsonEdit&) {}),
            R"({"a":1,"b":[1.0,-0.0025,"x\"y\n"],"c":{"d":null,"e":true},"u":18446744073709551615,"big":1e+300})");
}

TEST(JsonEditTest, SetRemoveAndMove) {
  EXPECT_EQ(edited(R"({"a":1,"b":{"c":2}})", [](JsonEdit& e) {
              EXPECT_TRUE(e.set_json("b.d", "\"new\""));
              EXPECT_TRUE(e.set_json("a", "[1,2]"));
              EXPECT_TRUE(e.set_json("x.y.z", "true"));  // creates the objects on the way
            }),
            R"({"a":[1,2],"b":{"c":2,"d":"new"},"x":{"y":{"z":true}}})");
  EXPECT_EQ(edited(R"({"a":1,"b":{"c":2,"d":3}})", [](JsonEdit& e) {
              EXPECT_NE(e.detach("b.c"), JsonEdit::kNone);
              EXPECT_EQ(e.detach("nope.c"), JsonEdit::kNone);
              EXPECT_EQ(e.detach("a.c"), JsonEdit::kNone);  // a is not an object
            }),
            R"({"a":1,"b":{"d":3}})");
  // Moving a subtree, also into a path under its old name.
  EXPECT_EQ(edited(R"({"a":{"x":1},"b":2})", [](JsonEdit& e) {
              JsonEdit::NodeId n = e.detach("a");
              EXPECT_TRUE(e.set_node("a.inner", n));
            }),
            R"({"b":2,"a":{"inner":{"x":1}}})");
  // A parent that is not an object cannot be set into.
  EXPECT_EQ(edited(R"({"a":1})", [](JsonEdit& e) { EXPECT_FALSE(e.set_json("a.b", "1")); }),
            R"({"a":1})");
}

TEST(JsonEditTest, DuplicateKeysEndWithTheSetValueOnly) {
  EXPECT_EQ(edited(R"({"a":1,"a":2,"b":3})", [](JsonEdit& e) { EXPECT_TRUE(e.set_json("a", "9")); }),
            R"({"a":9,"b":3})");
  EXPECT_EQ(edited(R"({"a":1,"a":2,"b":3})", [](JsonEdit& e) { e.detach("a"); }), R"({"b":3})");
}

TEST(JsonEditTest, KeysAreEscapedOnOutput) {
  EXPECT_EQ(edited(R"({"we\"ird\\":1})", [](JsonEdit& e) { EXPECT_TRUE(e.set_json("n", "2")); }),
            R"({"we\"ird\\":1,"n":2})");
}

// ---------------------------------------------------------------- transforms

struct Applied {
  bool ok = false;
  std::string json;  // the event after the transforms ("" if unchanged)
  std::string reason;
};

Applied apply(const std::string& rules_yaml, const std::string& event,
              ingest::TransformInput in = {}) {
  IngestionConfig cfg = ingestion_of("  transforms:\n" + rules_yaml);
  auto chain = TransformChain::compile(cfg.transforms);
  EXPECT_TRUE(chain.ok()) << chain.status().to_string();
  simdjson::dom::parser p;
  simdjson::dom::element doc = p.parse(event).value();
  TransformChain::Outcome out;
  Applied a;
  a.ok = chain->apply(doc, in, &out, &a.reason);
  if (a.ok && out.changed) {
    a.json = std::string(out.json);
    // The parsed outcome is the same event as the text.
    EXPECT_EQ(simdjson::minify(out.doc), simdjson::minify(p.parse(a.json).value()));
  }
  return a;
}

TEST(TransformTest, RenameSetRemoveDefault) {
  Applied a = apply(
      "    - {rename: usr, to: user.name}\n"
      "    - {set: env, value: prod}\n"
      "    - {set: n, value: 42}\n"
      "    - {set: ok, value: true}\n"
      "    - {remove: [password, debug.trace]}\n"
      "    - {default: country, value: unknown}\n"
      "    - {default: region, value: eu}\n"
      "    - {default: missing_parent.x, value: 1}\n",
      R"({"usr":"ann","password":"p","debug":{"trace":1,"keep":2},"region":null})");
  ASSERT_TRUE(a.ok) << a.reason;
  EXPECT_EQ(a.json,
            R"({"debug":{"keep":2},"region":"eu","user":{"name":"ann"},"env":"prod","n":42,)"
            R"("ok":true,"country":"unknown","missing_parent":{"x":1}})");
}

TEST(TransformTest, RulesSeeTheEventAsEarlierRulesLeftIt) {
  Applied a = apply(
      "    - {rename: price_eur, to: price}\n"
      "    - {set: total, expr: 'price * qty'}\n"
      "    - {set: big, value: true, when: 'total > 100'}\n"
      "    - {set: label, expr: 'upper(kind)'}\n",
      R"({"price_eur":30,"qty":4})");
  ASSERT_TRUE(a.ok) << a.reason;
  // `kind` is absent: the expression is missing and the field is not set.
  EXPECT_EQ(a.json, R"({"qty":4,"price":30,"total":120,"big":true})");
  // Reads of removed fields, of parents and of children of edited fields see the edits; reads of
  // untouched fields need no re-parse but must see the same values.
  Applied d = apply(
      "    - {remove: a}\n"
      "    - {set: had_a, expr: 'exists(a)'}\n"
      "    - {set: u.v, value: 1}\n"
      "    - {set: copy, expr: 'u'}\n"
      "    - {rename: m, to: n.inner}\n"
      "    - {set: inner_x, expr: 'n.inner.x'}\n"
      "    - {set: z2, expr: 'z * 2'}\n",
      R"({"a":1,"u":{"k":2},"z":3,"m":{"x":"y"}})");
  ASSERT_TRUE(d.ok) << d.reason;
  EXPECT_EQ(d.json, R"({"u":{"k":2,"v":1},"z":3,"had_a":false,"copy":{"k":2,"v":1},)"
                    R"("n":{"inner":{"x":"y"}},"inner_x":"y","z2":6})");
  Applied b = apply("    - {set: big, value: true, when: 'total > 100'}\n", R"({"total":5})");
  ASSERT_TRUE(b.ok);
  EXPECT_EQ(b.json, "");  // nothing changed
}

TEST(TransformTest, Casts) {
  Applied a = apply(
      "    - {cast: i, to: int}\n    - {cast: d, to: double}\n    - {cast: s, to: string}\n"
      "    - {cast: b, to: bool}\n    - {cast: f, to: int}\n    - {cast: n, to: int}\n"
      "    - {cast: o, to: string}\n    - {cast: absent, to: int}\n",
      R"({"i":" 17 ","d":"2.5","s":12,"b":"yes","f":-3.9,"n":null,"o":{"k":[1]}})");
  ASSERT_TRUE(a.ok) << a.reason;
  EXPECT_EQ(a.json, R"({"i":17,"d":2.5,"s":"12","b":true,"f":-3,"n":null,"o":"{\"k\":[1]}"})");
  Applied whole = apply("    - {cast: d, to: double}\n", R"({"d":3})");
  EXPECT_EQ(whole.json, R"({"d":3.0})");  // stays a double when read again

  Applied bad = apply("    - {cast: qty, to: int}\n", R"({"qty":"abc"})");
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.reason, "transforms[0] (cast qty): qty = \"abc\" cannot be cast to int");
  Applied skipped = apply("    - {cast: qty, to: int, on_error: skip}\n    - {set: x, value: 1}\n",
                          R"({"qty":"abc"})");
  ASSERT_TRUE(skipped.ok);
  EXPECT_EQ(skipped.json, R"({"qty":"abc","x":1})");
}

TEST(TransformTest, MaskAndHash) {
  Applied a = apply(
      "    - {mask: card, keep_last: 4}\n"
      "    - {mask: name, keep_first: 1, char: '#'}\n"
      "    - {mask: pin, keep_last: 4}\n"  // shorter than what is kept: all masked
      "    - {mask: secret, replacement: '[redacted]'}\n"
      "    - {mask: city, keep_first: 1, keep_last: 1}\n"  // code points, not bytes
      "    - {mask: num, keep_last: 2}\n",
      R"({"card":"4111111111111111","name":"Ann","pin":"123","secret":{"x":1},"city":"Zürich","num":123456})");
  ASSERT_TRUE(a.ok) << a.reason;
  EXPECT_EQ(a.json,
            R"({"card":"************1111","name":"A##","pin":"***","secret":"[redacted]",)"
            R"("city":"Z****h","num":"****56"})");
  Applied objects = apply("    - {mask: o, keep_last: 1}\n", R"({"o":{"a":1}})");
  EXPECT_FALSE(objects.ok);
  EXPECT_EQ(objects.reason, "transforms[0] (mask o): o is an object or array; mask needs a "
                            "scalar (or use `replacement`)");

  // SHA-256 (and HMAC-SHA256 with a key) as lowercase hex: known answers.
  Applied h = apply("    - {hash: e}\n    - {hash: k, key: key}\n",
                    R"({"e":"abc","k":"The quick brown fox jumps over the lazy dog"})");
  ASSERT_TRUE(h.ok) << h.reason;
  EXPECT_EQ(h.json,
            R"({"e":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",)"
            R"("k":"f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"})");
}

TEST(TransformTest, Metadata) {
  ingest::TransformInput in;
  in.received_at_ms = 1796000000123;
  in.source = "http";
  in.request_id = "req-7";
  Applied a = apply(
      "    - metadata: {received_at: _ingest.at, source: _ingest.source, request_id: rid}\n",
      R"({"a":1})", in);
  ASSERT_TRUE(a.ok) << a.reason;
  EXPECT_EQ(a.json, R"({"a":1,"_ingest":{"at":1796000000123,"source":"http"},"rid":"req-7"})");
}

TEST(TransformTest, ASetUnderANonObjectFailsTheEvent) {
  Applied a = apply("    - {set: a.b, value: 1}\n", R"({"a":"text"})");
  EXPECT_FALSE(a.ok);
  EXPECT_EQ(a.reason, "transforms[0] (set a.b): cannot set a.b: a parent is not an object");
  Applied r = apply("    - {rename: x, to: a.b}\n", R"({"x":1,"a":2})");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.reason,
            "transforms[0] (rename x): cannot rename x to a.b: a parent of a.b is not an object");
}

TEST(TransformTest, ConfigErrorsHavePositions) {
  EXPECT_EQ(config_error("  transforms:\n    - {rename: a}\n"),
            "p.yaml:3:7: ingestion.transforms[0].to: missing required key");
  EXPECT_EQ(config_error("  transforms:\n    - {cast: a, to: integer}\n"),
            "p.yaml:3:21: ingestion.transforms[0].to: expected one of int, double, float, string, bool, "
            "got \"integer\" (did you mean \"int\"?)");
  EXPECT_EQ(config_error("  transforms:\n    - {set: a, expr: 'b +'}\n"),
            "p.yaml:3:13: ingestion.transforms[0].expr: expr:1:4: expected an operand after \"+\"");
  EXPECT_EQ(config_error("  transforms:\n    - {set: a}\n"),
            "p.yaml:3:7: ingestion.transforms[0]: set needs `value` or `expr`");
  EXPECT_EQ(config_error("  transforms:\n    - {rename: a, set: b, to: c}\n"),
            "p.yaml:3:7: ingestion.transforms[0]: a transform does one thing, got rename and set");
  EXPECT_EQ(config_error("  transforms:\n    - {mask: a, keep_lats: 4}\n"),
            "p.yaml:3:17: ingestion.transforms[0].keep_lats: unknown key (did you mean "
            "\"keep_last\"?)");
}

// ---------------------------------------------------------------- quality checks

struct Checked {
  std::vector<std::string> failed;  // names of the failing checks
  std::string decisive_reason;      // "" if no reject/dead_letter/drop check failed
};

Checked check(const std::string& yaml, const std::string& event, int64_t now_ms = 1'000'000'000) {
  IngestionConfig cfg = ingestion_of(yaml);
  auto q = QualityChecks::compile(cfg.quality, cfg.timestamp_field, true);
  EXPECT_TRUE(q.ok()) << q.status().to_string();
  simdjson::dom::parser p;
  simdjson::dom::element doc = p.parse(event).value();
  QualityChecks::Outcome out;
  q->evaluate(doc, now_ms, &out);
  Checked c;
  for (uint32_t i : out.failed) c.failed.push_back(q->name(i));
  if (out.decisive >= 0) c.decisive_reason = q->reason(out.failed[out.decisive], doc, now_ms);
  return c;
}

TEST(QualityTest, EachKindPassesAndFails) {
  const std::string checks =
      "  timestamp_field: ts\n"
      "  quality:\n"
      "    - {name: ids, required: [user_id, action], action: tag}\n"
      "    - {name: amount, range: amount, min: 0, max: 100, action: tag}\n"
      "    - {name: level, allowed: level, values: [info, warn, 3, true], action: tag}\n"
      "    - {name: email, regex: email, pattern: '^[^@]+@[^@]+$', action: tag}\n"
      "    - {name: fresh, max_age: 1h, action: tag}\n"
      "    - {name: future, future_skew: 5m, action: tag}\n"
      "    - {name: credit, expr: 'not exists(limit) or amount <= limit', action: tag}\n";
  const int64_t now = 1'796'000'000'000;
  EXPECT_EQ(check(checks,
                  R"({"user_id":1,"action":"a","amount":50,"level":"warn","email":"a@b",)"
                  R"("ts":1795999000000,"limit":60})",
                  now)
                .failed,
            std::vector<std::string>{});
  // Absent fields pass every check but `required` (and expr, which decides for itself).
  EXPECT_EQ(check(checks, R"({"user_id":1,"action":"a","amount":1,"limit":2})", now).failed,
            std::vector<std::string>{});
  EXPECT_EQ(check(checks,
                  R"({"user_id":1,"amount":150.5,"level":"debug","email":"nope","ts":1,)"
                  R"("limit":10})",
                  now)
                .failed,
            (std::vector<std::string>{"ids", "amount", "level", "email", "fresh", "credit"}));
  EXPECT_EQ(check(checks, R"({"user_id":1,"action":"a","ts":"2026-12-01T00:00:00Z","level":3})",
                  now)
                .failed,
            std::vector<std::string>{"future"});
  // Numbers compare by value across int and double; types must match otherwise.
  EXPECT_EQ(check(checks, R"({"user_id":1,"action":"a","level":3.0})", now).failed,
            std::vector<std::string>{});
  EXPECT_EQ(check(checks, R"({"user_id":1,"action":"a","level":"3","amount":"5"})", now).failed,
            (std::vector<std::string>{"amount", "level"}));
}

TEST(QualityTest, TheFirstDecisiveFailureDecidesAndExplains) {
  const std::string checks =
      "  quality:\n"
      "    - {name: lvl, allowed: level, values: [info], action: tag}\n"
      "    - {name: amt, range: amount, min: 0, action: dead_letter}\n"
      "    - {name: ids, required: [user_id, action]}\n";
  Checked c = check(checks, R"({"level":"x","amount":-5})");
  EXPECT_EQ(c.failed, (std::vector<std::string>{"lvl", "amt"}));  // ids not reached
  EXPECT_EQ(c.decisive_reason, "quality check amt: amount = -5 is out of range >= 0");
  c = check(checks, R"({"level":"info","amount":1})");
  EXPECT_EQ(c.decisive_reason, "quality check ids: missing required fields user_id, action");
  c = check(checks, R"({"level":"x","amount":1,"user_id":1,"action":2})");
  EXPECT_EQ(c.failed, std::vector<std::string>{"lvl"});
  EXPECT_EQ(c.decisive_reason, "");  // only a tag
}

TEST(QualityTest, Reasons) {
  EXPECT_EQ(check("  quality:\n    - {regex: email, pattern: '@'}\n", R"({"email":7})").decisive_reason,
            "quality check regex:email: email = 7 is not a string");
  EXPECT_EQ(check("  quality:\n    - {allowed: c, values: [FR, DE]}\n", R"({"c":"IT"})").decisive_reason,
            "quality check allowed:c: c = \"IT\" is not one of [\"FR\",\"DE\"]");
  EXPECT_EQ(check("  quality:\n    - {max_age: 1h, field: t}\n", R"({"t":"yesterday"})").decisive_reason,
            "quality check max_age:t: t = \"yesterday\" is not epoch milliseconds or an RFC 3339 time");
  EXPECT_EQ(check("  quality:\n    - {max_age: 1h, field: t}\n", R"({"t":0})", 5'400'000).decisive_reason,
            "quality check max_age:t: event time 0 is 1h30m old, more than 1h");
  EXPECT_EQ(check("  quality:\n    - {name: lim, expr: 'a < 3'}\n", R"({"a":5})").decisive_reason,
            "quality check lim: expression `a < 3` is false");
}

TEST(QualityTest, LongAllowedListsUseTheIndex) {
  std::string values;
  for (int i = 0; i < 100; ++i) values += (i ? ", " : "") + std::to_string(i * 7);
  const std::string checks = "  quality:\n    - {allowed: v, values: [" + values + "]}\n";
  EXPECT_TRUE(check(checks, R"({"v":693})").failed.empty());
  EXPECT_TRUE(check(checks, R"({"v":693.0})").failed.empty());
  EXPECT_EQ(check(checks, R"({"v":694})").failed.size(), 1u);
}

TEST(QualityTest, ConfigErrorsHavePositions) {
  EXPECT_EQ(config_error("  quality:\n    - {max_age: 1h}\n"),
            "p.yaml:3:17: ingestion.quality[0].max_age: needs `field` (or "
            "ingestion.timestamp_field) to know where the event time is");
  EXPECT_EQ(config_error("  quality:\n    - {regex: a, pattern: '(x'}\n"),
            "p.yaml:3:15: ingestion.quality[0].pattern: invalid regular expression: missing ): (x");
  EXPECT_EQ(config_error("  quality:\n    - {range: a}\n"),
            "p.yaml:3:7: ingestion.quality[0]: a range check needs `min`, `max` or both");
  EXPECT_EQ(config_error("  quality:\n    - {range: a, min: ten}\n"),
            "p.yaml:3:23: ingestion.quality[0].min: expected a number, got \"ten\"");
  EXPECT_EQ(config_error("  quality:\n    - {required: a, action: quarantine}\n"),
            "p.yaml:3:29: ingestion.quality[0].action: expected one of reject, dead_letter, tag, "
            "drop, got \"quarantine\"");
  EXPECT_EQ(config_error("  quality:\n    - {name: x}\n"),
            "p.yaml:3:7: ingestion.quality[0]: a check needs one of required, range, allowed, "
            "regex, max_age, future_skew, expr");
  EXPECT_EQ(config_error("  quality:\n    - {expr: 'a ==', action: drop}\n"),
            "p.yaml:3:14: ingestion.quality[0].expr: expr:1:5: expected an operand after \"==\"");
}

}  // namespace
}  // namespace spate
