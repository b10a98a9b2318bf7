// JsonEdit: cheap, sequential edits of one parsed JSON event, then one serialization.
//
// Transforms (rename, set, remove, cast, mask, ...) change a few fields of an event that simdjson
// parsed into a read-only DOM. JsonEdit keeps an overlay over that DOM: untouched subtrees stay
// DOM elements and are copied through on write(); only the objects on an edited path are
// expanded into member lists. Values are set as JSON text or moved (rename) as overlay nodes.
//
// Contract:
//  - reset(root) starts over on a new event; every view taken from the DOM (keys, strings) must
//    stay valid until write() has run (the caller keeps the simdjson parser untouched until then).
//  - Paths are dotted member names ("a.b.c"); there are no array indexes. A path whose
//    intermediate member exists but is not an object cannot be set (set() returns false).
//  - write() appends the edited event as minified JSON (member order kept, new members last);
//    doubles keep a fraction or exponent so that they stay doubles when parsed again.
//  - Not thread-safe: one JsonEdit per thread (it reuses its buffers, so steady-state edits
//    allocate nothing beyond growth of those buffers).
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace spate::ingest {

/// Append `e` as minified JSON (strings escaped, doubles as shortest round-trip text with a
/// fraction or exponent). No allocation beyond `out`'s growth.
void append_element_json(const simdjson::dom::element& e, std::string& out);

/// `e` as minified JSON for messages, cut at about `max_len` bytes (on a UTF-8 boundary) with
/// "..." appended.
std::string json_excerpt(const simdjson::dom::element& e, size_t max_len = 80);

class JsonEdit {
 public:
  /// A node of the overlay, or kNone.
  using NodeId = uint32_t;
  static constexpr NodeId kNone = 0xFFFFFFFFu;

  /// Start editing the object (or other value) `root`.
  void reset(const simdjson::dom::element& root);

  /// True once any edit was made since reset().
  bool dirty() const { return dirty_; }

  /// The node at `path`, or kNone if absent. Never expands anything.
  NodeId find(std::string_view path);
  /// If `n` is an untouched DOM value, true and *out = it. False for edited objects and for
  /// values set as text.
  bool element_of(NodeId n, simdjson::dom::element* out) const;
  /// The JSON text of node `n` (for values set as text: that text; otherwise serialized).
  void append_node_json(NodeId n, std::string& out) const;

  /// Set `path` to the JSON text `json` (which must be one valid JSON value; copied). Creates
  /// missing intermediate objects. False if an intermediate member is not an object or the
  /// root is not an object.
  bool set_json(std::string_view path, std::string_view json);
  /// Set `path` to an existing (detached) node, e.g. one taken by detach().
  bool set_node(std::string_view path, NodeId n);
  /// Remove `path` and return its node (kNone if it was absent), which may be set elsewhere.
  NodeId detach(std::string_view path);

  /// Append the edited event as JSON.
  void write(std::string& out) const;

 private:
  enum class Kind : uint8_t { kElement, kObject, kText };
  struct Node {
    Kind kind = Kind::kElement;
    simdjson::dom::element elem;  // kElement
    uint32_t text_begin = 0;      // kText: range in text_
    uint32_t text_end = 0;
    uint32_t first = kNone;  // kObject: first member in members_
    uint32_t last = kNone;
  };
  struct Member {
    std::string_view key;
    NodeId value = kNone;  // kNone: removed
    uint32_t next = kNone;
  };

  NodeId add_element(const simdjson::dom::element& e);
  NodeId add_empty_object();
  // Turn an element object into a member list; false if `n` is not an object.
  bool expand(NodeId n);
  // The member `key` of the expanded object `obj`, or kNone.
  uint32_t member_of(NodeId obj, std::string_view key) const;
  NodeId child(NodeId n, std::string_view key);
  void append_member(NodeId obj, std::string_view key, NodeId value);
  // The parent object of `path` (expanded), creating missing objects if `create`.
  NodeId parent_of(std::string_view path, bool create, std::string_view* leaf);
  void write_node(NodeId n, std::string& out) const;

  std::vector<Node> nodes_;
  std::vector<Member> members_;
  std::string text_;  // values set as text, and keys copied from set paths
  NodeId root_ = kNone;
  bool dirty_ = false;
};

}  // namespace spate::ingest
