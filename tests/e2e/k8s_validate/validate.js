#!/usr/bin/env node
// Validates a multi-document Kubernetes YAML stream against the Kubernetes OpenAPI schemas of
// the npm package kubernetes-models (one class per apiVersion/kind, each with .validate()).
//   node validate.js FILE|-        (SPATE_K8S_NODE_DIR: the folder holding node_modules;
//                                   default: this folder)
// Prints one JSON object: {"objects": [every document, parsed], "results": [{"index", "kind",
// "name", "ok", "error"}]}. Exit 0 when every document is valid, 1 when one is not, 2 when the
// stream cannot be read or parsed.
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

const nodeDir = process.env.SPATE_K8S_NODE_DIR || __dirname;
const req = createRequire(path.join(path.resolve(nodeDir), "package.json"));
const yaml = req("js-yaml");

const file = process.argv[2];
if (!file) {
  console.error("usage: validate.js FILE|-");
  process.exit(2);
}
let docs;
try {
  const text = fs.readFileSync(file === "-" ? 0 : file, "utf8");
  docs = yaml.loadAll(text).filter((d) => d !== null && d !== undefined);
} catch (e) {
  console.error(`cannot parse ${file}: ${e.message}`);
  process.exit(2);
}

// Kubernetes' strict field validation (the default of `kubectl apply --server-side`) refuses
// fields the schema does not know, but these JSON-schema validators allow them. So validation
// runs on a proxy that records which properties of each object the validator reads: a field
// it never looked at, in an object whose keys it did not enumerate (maps such as labels are
// enumerated), is unknown to the schema.
function unknownFields(cls, doc) {
  const read = new Map(); // path -> Set of keys read, or "*" once the keys were enumerated
  const note = (p, key) => {
    if (!read.has(p)) read.set(p, new Set());
    read.get(p).add(key);
  };
  const wrap = (obj, p) =>
    new Proxy(obj, {
      get(t, key, r) {
        const v = Reflect.get(t, key, r);
        if (typeof key !== "string") return v;
        note(p, key);
        return v !== null && typeof v === "object" ? wrap(v, `${p}/${key}`) : v;
      },
      has(t, key) {
        if (typeof key === "string") note(p, key);
        return Reflect.has(t, key);
      },
      ownKeys(t) {
        note(p, "*");
        return Reflect.ownKeys(t);
      },
    });
  cls.prototype.validate.call(wrap(JSON.parse(JSON.stringify(doc)), ""));
  const unknown = [];
  const walk = (v, p) => {
    if (v === null || typeof v !== "object") return;
    const seen = read.get(p) || new Set();
    for (const [k, child] of Object.entries(v)) {
      if (!Array.isArray(v) && !seen.has("*") && !seen.has(k)) {
        unknown.push(`${p}/${k}`);
        continue; // nothing under an unknown field is known either
      }
      walk(child, `${p}/${k}`);
    }
  };
  walk(doc, "");
  return unknown;
}

const results = docs.map((doc, index) => {
  const kind = doc && doc.kind;
  const apiVersion = doc && doc.apiVersion;
  const name = doc && doc.metadata && doc.metadata.name;
  const r = { index, kind, name, ok: false, error: null };
  if (typeof kind !== "string" || typeof apiVersion !== "string") {
    r.error = "no apiVersion/kind";
    return r;
  }
  let cls;
  try {
    cls = req(`kubernetes-models/${apiVersion}`)[kind];
  } catch (e) {
    r.error = `unknown apiVersion ${apiVersion}: ${e.message}`;
    return r;
  }
  if (typeof cls !== "function") {
    r.error = `unknown kind ${kind} in ${apiVersion}`;
    return r;
  }
  try {
    // A deep copy: the model may add defaults, the JSON output shows the document as written.
    new cls(JSON.parse(JSON.stringify(doc))).validate();
    const unknown = unknownFields(cls, doc);
    if (unknown.length > 0) {
      r.error = `unknown field(s): ${unknown.join(", ")}`;
    } else {
      r.ok = true;
    }
  } catch (e) {
    r.error = e && e.message ? e.message : String(e);
  }
  return r;
});

process.stdout.write(JSON.stringify({ objects: docs, results }) + "\n");
process.exit(results.every((r) => r.ok) ? 0 : 1);
