// node check_bodies.js FILE.json: FILE holds [{what, schema, body}]; each body is validated
// against its JSON Schema (2020-12, the dialect of OpenAPI 3.1) with Ajv. Prints a JSON list of
// {what, errors} for the bodies that do not match (empty: all match) and exits 0; exits 2 when
// a schema does not compile.
"use strict";
const path = require("path");
const fs = require("fs");
const req = require("module").createRequire(path.join(process.env.SPATE_WEB_NODE_DIR || __dirname, "package.json"));
const Ajv2020 = req("ajv/dist/2020");

const ajv = new Ajv2020({ strict: false, allErrors: true });
const failures = [];
for (const { what, schema, body } of JSON.parse(fs.readFileSync(process.argv[2], "utf8"))) {
  let validate;
  try {
    validate = ajv.compile(schema);
  } catch (e) {
    console.log(JSON.stringify([{ what, errors: "schema does not compile: " + e.message }]));
    process.exit(2);
  }
  if (!validate(body)) failures.push({ what, errors: ajv.errorsText(validate.errors) });
}
console.log(JSON.stringify(failures));
