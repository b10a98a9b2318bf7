#include "ingest/transform/json_edit.h"

#include <charconv>

#include "base/json_escape.h"
#include "event/expr.h"

namespace spate::ingest {

void append_element_json(const simdjson::dom::element& e, std::string& out) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::OBJECT: {
      out.push_back('{');
      bool first = true;
      const simdjson::dom::object obj = e.get_object().value_unsafe();
      for (auto field : obj) {
        if (!first) out.push_back(',');
        first = false;
        append_json_quoted(out, field.key);
        out.push_back(':');
        append_element_json(field.value, out);
      }
      out.push_back('}');
      return;
    }
    case element_type::ARRAY: {
      out.push_back('[');
      bool first = true;
      const simdjson::dom::array arr = e.get_array().value_unsafe();
      for (auto item : arr) {
        if (!first) out.push_back(',');
        first = false;
        append_element_json(item, out);
      }
      out.push_back(']');
      return;
    }
    case element_type::STRING:
      append_json_quoted(out, e.get_string().value_unsafe());
      return;
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE: {
      char buf[40];
      std::to_chars_result r;
      if (e.type() == element_type::INT64) {
        r = std::to_chars(buf, buf + sizeof buf, e.get_int64().value_unsafe());
      } else if (e.type() == element_type::UINT64) {
        r = std::to_chars(buf, buf + sizeof buf, e.get_uint64().value_unsafe());
      } else {
        // Kept a double when read again ("2.0"); simdjson never yields inf/nan.
        expr::append_json(expr::Value::from_double(e.get_double().value_unsafe()), out);
        return;
      }
      out.append(buf, r.ptr);
      return;
    }
    case element_type::BOOL:
      out += e.get_bool().value_unsafe() ? "true" : "false";
      return;
    case element_type::NULL_VALUE:
      out += "null";
      return;
  }
}

std::string json_excerpt(const simdjson::dom::element& e, size_t max_len) {
  std::string out;
  append_element_json(e, out);
  if (out.size() > max_len && max_len > 3) {
    size_t cut = max_len - 3;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out = out.substr(0, cut) + "...";
  }
  return out;
}

void JsonEdit::reset(const simdjson::dom::element& root) {
  nodes_.clear();
  members_.clear();
  text_.clear();
  dirty_ = false;
  root_ = add_element(root);
}

JsonEdit::NodeId JsonEdit::add_element(const simdjson::dom::element& e) {
  Node n;
  n.kind = Kind::kElement;
  n.elem = e;
  nodes_.push_back(n);
  return static_cast<NodeId>(nodes_.size() - 1);
}

JsonEdit::NodeId JsonEdit::add_empty_object() {
  Node n;
  n.kind = Kind::kObject;
  nodes_.push_back(n);
  return static_cast<NodeId>(nodes_.size() - 1);
}

bool JsonEdit::expand(NodeId id) {
  if (nodes_[id].kind == Kind::kObject) return true;
  if (nodes_[id].kind != Kind::kElement || !nodes_[id].elem.is_object()) return false;
  simdjson::dom::object obj = nodes_[id].elem.get_object().value_unsafe();
  nodes_[id].kind = Kind::kObject;
  nodes_[id].first = nodes_[id].last = kNone;
  for (auto field : obj) {
    NodeId v = add_element(field.value);
    append_member(id, field.key, v);
  }
  return true;
}

void JsonEdit::append_member(NodeId obj, std::string_view key, NodeId value) {
  members_.push_back({key, value, kNone});
  const auto m = static_cast<uint32_t>(members_.size() - 1);
  if (nodes_[obj].last == kNone) {
    nodes_[obj].first = m;
  } else {
    members_[nodes_[obj].last].next = m;
  }
  nodes_[obj].last = m;
}

uint32_t JsonEdit::member_of(NodeId obj, std::string_view key) const {
  // The first live member with the key, as simdjson's at_key finds it.
  for (uint32_t m = nodes_[obj].first; m != kNone; m = members_[m].next) {
    if (members_[m].value != kNone && members_[m].key == key) return m;
  }
  return kNone;
}

JsonEdit::NodeId JsonEdit::child(NodeId n, std::string_view key) {
  const Node& node = nodes_[n];
  if (node.kind == Kind::kObject) {
    uint32_t m = member_of(n, key);
    return m == kNone ? kNone : members_[m].value;
  }
  if (node.kind != Kind::kElement) return kNone;
  simdjson::dom::object obj;
  if (node.elem.get_object().get(obj)) return kNone;
  simdjson::dom::element e;
  if (obj.at_key(key).get(e)) return kNone;
  return add_element(e);
}

JsonEdit::NodeId JsonEdit::find(std::string_view path) {
  NodeId n = root_;
  size_t start = 0;
  while (n != kNone) {
    size_t dot = path.find('.', start);
    std::string_view part = path.substr(start, dot == std::string_view::npos ? path.npos : dot - start);
    n = child(n, part);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return n;
}

bool JsonEdit::element_of(NodeId n, simdjson::dom::element* out) const {
  if (n == kNone || nodes_[n].kind != Kind::kElement) return false;
  *out = nodes_[n].elem;
  return true;
}

JsonEdit::NodeId JsonEdit::parent_of(std::string_view path, bool create, std::string_view* leaf) {
  if (!expand(root_)) return kNone;
  NodeId n = root_;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    if (dot == std::string_view::npos) {
      *leaf = path.substr(start);
      return n;
    }
    std::string_view part = path.substr(start, dot - start);
    uint32_t m = member_of(n, part);
    NodeId next = kNone;
    if (m != kNone) {
      next = members_[m].value;
      if (!expand(next)) return kNone;  // exists but is not an object
    } else {
      if (!create) return kNone;
      next = add_empty_object();
      append_member(n, part, next);
    }
    n = next;
    start = dot + 1;
  }
}

bool JsonEdit::set_node(std::string_view path, NodeId value) {
  std::string_view leaf;
  NodeId parent = parent_of(path, true, &leaf);
  if (parent == kNone) return false;
  dirty_ = true;
  uint32_t m = member_of(parent, leaf);
  if (m != kNone) {
    members_[m].value = value;
    // Duplicate keys of the input: the set value is the only one left.
    for (uint32_t k = members_[m].next; k != kNone; k = members_[k].next) {
      if (members_[k].key == leaf) members_[k].value = kNone;
    }
  } else {
    append_member(parent, leaf, value);
  }
  return true;
}

bool JsonEdit::set_json(std::string_view path, std::string_view json) {
  Node n;
  n.kind = Kind::kText;
  n.text_begin = static_cast<uint32_t>(text_.size());
  text_.append(json);
  n.text_end = static_cast<uint32_t>(text_.size());
  nodes_.push_back(n);
  return set_node(path, static_cast<NodeId>(nodes_.size() - 1));
}

JsonEdit::NodeId JsonEdit::detach(std::string_view path) {
  std::string_view leaf;
  NodeId parent = parent_of(path, false, &leaf);
  if (parent == kNone) return kNone;
  uint32_t m = member_of(parent, leaf);
  if (m == kNone) return kNone;
  NodeId v = members_[m].value;
  // Remove every member with this key (duplicate keys in the input included).
  for (uint32_t k = nodes_[parent].first; k != kNone; k = members_[k].next) {
    if (members_[k].key == leaf) members_[k].value = kNone;
  }
  dirty_ = true;
  return v;
}

void JsonEdit::append_node_json(NodeId n, std::string& out) const { write_node(n, out); }

void JsonEdit::write_node(NodeId id, std::string& out) const {
  const Node& n = nodes_[id];
  switch (n.kind) {
    case Kind::kElement:
      append_element_json(n.elem, out);
      return;
    case Kind::kText:
      out.append(text_, n.text_begin, n.text_end - n.text_begin);
      return;
    case Kind::kObject: {
      out.push_back('{');
      bool first = true;
      for (uint32_t m = n.first; m != kNone; m = members_[m].next) {
        if (members_[m].value == kNone) continue;
        if (!first) out.push_back(',');
        first = false;
        append_json_quoted(out, members_[m].key);
        out.push_back(':');
        write_node(members_[m].value, out);
      }
      out.push_back('}');
      return;
    }
  }
}

void JsonEdit::write(std::string& out) const { write_node(root_, out); }

}  // namespace spate::ingest
