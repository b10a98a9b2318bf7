// node openapi_validate.js FILE.json: validates an OpenAPI document with
// @apidevtools/swagger-parser (the OpenAPI 3.x JSON schema, then every $ref resolved).
// Prints "ok" and exits 0, or prints the errors and exits 1. SPATE_WEB_NODE_DIR names the
// directory holding node_modules (tests/e2e/spate_e2e.py node_tools()).
"use strict";
const path = require("path");
const fs = require("fs");
const req = require("module").createRequire(path.join(process.env.SPATE_WEB_NODE_DIR || __dirname, "package.json"));
const SwaggerParser = req("@apidevtools/swagger-parser");

const doc = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
SwaggerParser.validate(doc)
  .then((api) => {
    const ops = Object.values(api.paths || {}).reduce((n, item) => n + Object.keys(item).length, 0);
    console.log("ok " + ops + " operations");
  })
  .catch((e) => {
    console.log(String(e && e.message || e));
    process.exit(1);
  });
