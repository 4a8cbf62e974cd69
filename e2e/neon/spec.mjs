// Checks responses against Neon's own OpenAPI spec, the copy shipped in
// @neondatabase/api-client 2.7.3 (public-v2-for-users.gen.yaml).
//
// The check is deliberately small and covers what clients depend on: the declared success
// status, required fields, JSON types (with `nullable`), enums, string patterns and lengths,
// number bounds, date-time and uuid formats, through $ref, allOf, oneOf and anyOf.
// Properties the spec does not name are allowed (neonauth may add extensions).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import YAML from "yaml";

const require = createRequire(import.meta.url);
const specPath = require.resolve("@neondatabase/api-client/public-v2-for-users.gen.yaml");

let spec;
let operations;

function load() {
  if (spec) return;
  spec = YAML.parse(readFileSync(specPath, "utf8"));
  operations = new Map();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (op && typeof op === "object" && op.operationId) {
        operations.set(op.operationId, { path, method: method.toUpperCase(), op });
      }
    }
  }
}

function deref(schema) {
  let s = schema;
  const seen = new Set();
  while (s && s.$ref) {
    if (seen.has(s.$ref)) throw new Error(`cyclic $ref ${s.$ref}`);
    seen.add(s.$ref);
    const parts = s.$ref.replace(/^#\//, "").split("/");
    s = parts.reduce((o, k) => o?.[k], spec);
    if (!s) throw new Error(`unresolved $ref ${[...seen].pop()}`);
  }
  return s;
}

/** The operation's method, path and declared success status. */
export function operation(operationId) {
  load();
  const entry = operations.get(operationId);
  if (!entry) throw new Error(`no operation ${operationId} in the spec`);
  const success = Object.keys(entry.op.responses).filter((c) => /^2\d\d$/.test(c));
  return { method: entry.method, path: entry.path, successStatuses: success.map(Number) };
}

function responseSchema(operationId, status) {
  load();
  const { op } = operations.get(operationId);
  let resp = op.responses[String(status)] ?? op.responses[status];
  if (!resp) return undefined;
  resp = deref(resp);
  return resp.content?.["application/json"]?.schema;
}

function typeOf(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function validate(schema, value, path, errors, depth = 0) {
  if (!schema || depth > 60) return;
  schema = deref(schema);
  if (schema.allOf) {
    for (const s of schema.allOf) validate(s, value, path, errors, depth + 1);
  }
  for (const key of ["oneOf", "anyOf"]) {
    if (!schema[key]) continue;
    const results = schema[key].map((s) => {
      const e = [];
      validate(s, value, path, e, depth + 1);
      return e;
    });
    if (!results.some((e) => e.length === 0)) {
      const best = results.reduce((a, b) => (b.length < a.length ? b : a));
      errors.push(`${path}: matches none of the ${key} alternatives; closest: ${best.join("; ")}`);
    }
  }
  if (value === null) {
    if (schema.type && !schema.nullable) errors.push(`${path}: is null, want ${schema.type}`);
    return;
  }
  const t = typeOf(value);
  if (schema.type) {
    const ok = schema.type === t || (schema.type === "number" && t === "integer");
    if (!ok) {
      errors.push(`${path}: is ${t} ${JSON.stringify(value)?.slice(0, 60)}, want ${schema.type}`);
      return;
    }
  }
  if (schema.enum && !schema.enum.includes(value)) {
    errors.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  if (t === "string") {
    if (schema.pattern) {
      let re;
      try { re = new RegExp(schema.pattern, "u"); } catch { re = null; }
      if (re && !re.test(value)) errors.push(`${path}: ${JSON.stringify(value)} does not match ${schema.pattern}`);
    }
    if (schema.minLength !== undefined && value.length < schema.minLength) {
      errors.push(`${path}: shorter than ${schema.minLength}`);
    }
    if (schema.maxLength !== undefined && value.length > schema.maxLength) {
      errors.push(`${path}: longer than ${schema.maxLength}`);
    }
    if (schema.format === "date-time" && !(DATE_TIME.test(value) && !Number.isNaN(Date.parse(value)))) {
      errors.push(`${path}: ${JSON.stringify(value)} is not an RFC 3339 date-time`);
    }
    if (schema.format === "uuid" && !UUID.test(value)) {
      errors.push(`${path}: ${JSON.stringify(value)} is not a uuid`);
    }
  }
  if (t === "integer" || t === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${path}: below ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${path}: above ${schema.maximum}`);
  }
  if (t === "array" && schema.items) {
    value.forEach((v, i) => validate(schema.items, v, `${path}[${i}]`, errors, depth + 1));
  }
  if (t === "object") {
    for (const name of schema.required ?? []) {
      if (!(name in value)) errors.push(`${path}.${name}: required, missing`);
    }
    for (const [name, s] of Object.entries(schema.properties ?? {})) {
      if (name in value && value[name] !== undefined) {
        validate(s, value[name], `${path}.${name}`, errors, depth + 1);
      }
    }
    if (schema.additionalProperties && typeof schema.additionalProperties === "object") {
      for (const [name, v] of Object.entries(value)) {
        if (!(name in (schema.properties ?? {}))) {
          validate(schema.additionalProperties, v, `${path}.${name}`, errors, depth + 1);
        }
      }
    }
  }
}

/** Every way body differs from the spec's response schema of operationId at status. */
export function violations(operationId, status, body) {
  const schema = responseSchema(operationId, status);
  if (!schema) return [];
  const errors = [];
  validate(schema, body, "body", errors);
  return errors;
}

/**
 * Asserts that status is the operation's declared success status and that body matches the
 * response schema for it.
 */
export function assertSpec(operationId, status, body) {
  const op = operation(operationId);
  assert.ok(op.successStatuses.includes(status),
    `${operationId} (${op.method} ${op.path}): status ${status}, the spec declares ` +
    `${op.successStatuses.join(" or ")}; body: ${JSON.stringify(body)?.slice(0, 400)}`);
  const errs = violations(operationId, status, body);
  assert.deepEqual(errs, [],
    `${operationId} (${op.method} ${op.path}) response does not match the spec:\n  ` +
    errs.join("\n  "));
}
