// Small helpers shared by the three test files.

import assert from "node:assert/strict";

/** Fails with a readable message when a value an earlier step should have produced is absent. */
export function need(value, what) {
  assert.ok(value !== undefined && value !== null && value !== "",
    `${what} is missing: an earlier step failed`);
  return value;
}

export const short = (v, n = 600) => {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s === undefined ? String(v) : s.length > n ? `${s.slice(0, n)}…` : s;
};

/** Asserts that body is Neon's error body (GeneralError: code and message required). */
export function assertGeneralError(body, what) {
  assert.equal(typeof body?.code, "string", `${what}: error body has no string code: ${short(body)}`);
  assert.equal(typeof body?.message, "string",
    `${what}: error body has no string message: ${short(body)}`);
}

/** Asserts a postgresql:// URI and returns its parts. */
export function parsePgURI(uri) {
  assert.equal(typeof uri, "string", `connection URI is not a string: ${short(uri)}`);
  const u = new URL(uri);
  assert.ok(u.protocol === "postgresql:" || u.protocol === "postgres:",
    `connection URI scheme is ${u.protocol}: ${uri}`);
  return {
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    host: u.hostname,
    port: u.port,
    database: decodeURIComponent(u.pathname.replace(/^\//, "")),
    params: Object.fromEntries(u.searchParams),
  };
}

export const PROJECT_FIELDS = ["id", "platform_id", "region_id", "name", "pg_version",
  "proxy_host", "store_passwords", "provisioner", "creation_source",
  "history_retention_seconds", "created_at", "owner_id"];

/** The given fields of obj, for deepEqual across two answers about the same resource. */
export const pick = (obj, fields) =>
  Object.fromEntries(fields.map((f) => [f, obj?.[f]]));
