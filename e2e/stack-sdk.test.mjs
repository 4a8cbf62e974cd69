// End-to-end test of neonauth with the official Stack Auth JavaScript SDK (@stackframe/js)
// on Node 20. It starts the built binary (NEONAUTH_BIN, default ../bin/neonauth) on a free
// loopback port with a temporary data directory, provisions a project and its Neon Auth
// integration over /api/v2, then drives the SDK's server and client apps, verifies access
// tokens with jose against the published jwks_url, and checks neon_auth.users_sync in the
// project's database after each operation. Every request the SDK makes is recorded and must
// go to our loopback server.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { access, chmod, constants, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

import { StackClientApp, StackServerApp } from "@stackframe/js";
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify } from "jose";
import pg from "pg";

const here = path.dirname(fileURLToPath(import.meta.url));
// NEONAUTH_BIN is taken relative to the working directory; the default, to this folder.
const BIN = process.env.NEONAUTH_BIN ? path.resolve(process.env.NEONAUTH_BIN)
  : path.resolve(here, "../bin/neonauth");
const ACCESS_TTL_SECONDS = 30; // the SDK needs more than 20 s left on a fresh token
const PASSWORD = "correct-horse-1";

/** The running service and what the tests share. */
const ctx = {
  proc: null,
  dir: "",
  log: [],
  baseUrl: "",
  apiKey: "",
  db: null,
  auth: null, // the integration: auth_provider_project_id, pub_client_key, ...
  requests: [], // every request made through fetch: "METHOD url"
};

/** Waits until check() returns a truthy value, or fails after ms. */
async function until(what, check, ms = 60_000, step = 50) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}\n` +
        ctx.log.join("").slice(-4000));
    }
    await sleep(step);
  }
}

/** Starts `neonauth serve` on 127.0.0.1:0 and waits for /healthz. */
async function startServer() {
  await access(BIN, constants.X_OK).catch(() => {
    throw new Error(`${BIN} is not an executable: build it with ` +
      "`go build -o bin/neonauth ./cmd/neonauth`, or set NEONAUTH_BIN");
  });
  ctx.dir = await mkdtemp(path.join(tmpdir(), "neonauth-e2e-"));
  await chmod(ctx.dir, 0o711); // the managed PostgreSQL servers run as another user
  const data = path.join(ctx.dir, "data");
  ctx.proc = spawn(BIN, ["serve", "--listen", "127.0.0.1:0", "--data-dir", data,
    "--bcrypt-cost", "4", "--unsafe-fast-storage",
    "--access-token-ttl", `${ACCESS_TTL_SECONDS}s`], { stdio: ["ignore", "pipe", "pipe"] });
  for (const s of [ctx.proc.stdout, ctx.proc.stderr]) s.on("data", (b) => ctx.log.push(String(b)));
  const exited = once(ctx.proc, "exit").then(([code]) => {
    throw new Error(`neonauth exited with ${code}:\n${ctx.log.join("")}`);
  });
  exited.catch(() => {});
  const ready = until("the listen address and API key", async () => {
    const addr = (await readFile(path.join(data, "listen-address"), "utf8")).trim();
    const key = (await readFile(path.join(data, "api-key"), "utf8")).trim();
    return addr && key && { addr, key };
  });
  const { addr, key } = await Promise.race([ready, exited]);
  assert.match(addr, /^127\.0\.0\.1:\d+$/);
  ctx.baseUrl = `http://${addr}`;
  ctx.apiKey = key;
  await Promise.race([until("healthz", async () =>
    (await fetch(`${ctx.baseUrl}/healthz`)).status === 200), exited]);
}

/** Stops the service with SIGTERM and waits for it (SIGKILL after 30 s). */
async function stopServer() {
  const p = ctx.proc;
  if (p && p.exitCode === null && p.signalCode === null) {
    const exit = once(p, "exit");
    p.kill("SIGTERM");
    const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
    await exit;
    clearTimeout(timer);
  }
  if (ctx.dir) await rm(ctx.dir, { recursive: true, force: true });
}

/** Calls the management API. */
async function neon(method, p, body) {
  const res = await fetch(`${ctx.baseUrl}/api/v2${p}`, {
    method,
    headers: { Authorization: `Bearer ${ctx.apiKey}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${p}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/** Records every fetch, so that the test can see which endpoints the SDK uses. */
function recordFetch() {
  const real = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const method = init?.method ?? (input instanceof Request ? input.method : "GET");
    ctx.requests.push(`${method.toUpperCase()} ${url}`);
    if (process.env.E2E_TRACE) console.error(Date.now() % 100000, method, url);
    return real(input, init);
  };
}

/** Reads a user's users_sync row, or null. */
async function syncRow(id) {
  const r = await ctx.db.query(`SELECT raw_json, name, email, created_at, updated_at,
    deleted_at FROM neon_auth.users_sync WHERE id = $1`, [id]);
  return r.rows[0] ?? null;
}

/** Waits until a user's users_sync row satisfies ok. */
async function waitRow(id, ok, what) {
  return until(`users_sync row ${id} ${what}`, async () => {
    const row = await syncRow(id);
    return row && ok(row) && row;
  }, 15_000, 25);
}

function apps() {
  const common = {
    projectId: ctx.auth.auth_provider_project_id,
    publishableClientKey: ctx.auth.pub_client_key,
    baseUrl: ctx.baseUrl, // always explicit: the SDK then talks to nothing else
    tokenStore: "memory",
    redirectMethod: "none",
  };
  return {
    server: new StackServerApp({ ...common, secretServerKey: ctx.auth.secret_server_key }),
    client: new StackClientApp(common),
  };
}

before(async () => {
  recordFetch();
  await startServer();
  const created = await neon("POST", "/projects", { project: { name: "sdk-e2e" } });
  ctx.auth = await neon("POST", "/projects/auth/create", {
    auth_provider: "stack", project_id: created.project.id, branch_id: created.branch.id,
  });
  ctx.db = new pg.Client({ connectionString: created.connection_uris[0].connection_uri });
  await ctx.db.connect();
});

after(async () => {
  await ctx.db?.end();
  await stopServer();
});

test("StackServerApp: create, list, get, update and delete users", async () => {
  const { server } = apps();
  const email = "sdk-server@example.com";
  const user = await server.createUser({
    primaryEmail: email, password: PASSWORD, primaryEmailAuthEnabled: true,
    displayName: "Server Made",
  });
  assert.equal(user.primaryEmail, email);
  assert.equal(user.displayName, "Server Made");
  assert.equal(user.hasPassword, true);
  let row = await waitRow(user.id, (r) => r.deleted_at === null, "created");
  assert.equal(row.email, email);
  assert.equal(row.name, "Server Made");
  assert.equal(row.raw_json.id, user.id);
  assert.equal(row.raw_json.signed_up_at_millis, user.signedUpAt.getTime());
  assert.ok(row.created_at instanceof Date);

  const list = await server.listUsers({ limit: 10 });
  assert.ok(list.some((u) => u.id === user.id), "listUsers lacks the new user");
  assert.equal(list.nextCursor, null);

  const got = await server.getUser(user.id);
  assert.equal(got?.id, user.id);
  assert.equal(got.primaryEmail, email);

  await got.update({ displayName: "Server Renamed", serverMetadata: { tier: 2 } });
  row = await waitRow(user.id, (r) => r.name === "Server Renamed", "updated");
  assert.notEqual(row.updated_at, null);
  assert.deepEqual(row.raw_json.server_metadata, { tier: 2 });
  assert.equal(row.deleted_at, null);
  assert.equal((await server.getUser(user.id))?.displayName, "Server Renamed");

  await got.delete();
  row = await waitRow(user.id, (r) => r.deleted_at !== null, "soft-deleted");
  assert.equal(row.email, email, "the deleted row keeps its data");
  assert.equal(row.raw_json.id, user.id);
  assert.equal(await server.getUser(user.id), null);
  assert.ok(!(await server.listUsers()).some((u) => u.id === user.id));
});

test("StackClientApp: sign up, sign in, refresh past expiry, verify with jose, sign out",
  { timeout: 100_000 }, async () => {
    const { client } = apps();
    const email = "sdk-client@example.com";
    const up = await client.signUpWithCredential({ email, password: PASSWORD,
      noVerificationCallback: true });
    assert.equal(up.status, "ok", `sign-up: ${up.error}`);
    let user = await client.getUser({ or: "throw" });
    assert.equal(user.primaryEmail, email);
    assert.equal(user.displayName, null);
    let row = await waitRow(user.id, (r) => r.deleted_at === null, "created");
    assert.equal(row.email, email);
    assert.equal(row.name, null);
    assert.equal(row.updated_at, null);

    const dup = await apps().client.signUpWithCredential({ email: email.toUpperCase(),
      password: PASSWORD, noVerificationCallback: true });
    assert.equal(dup.status, "error");
    assert.equal(dup.error.errorCode, "USER_EMAIL_ALREADY_EXISTS");
    const short = await apps().client.signUpWithCredential({ email: "short@example.com",
      password: "1234567", noVerificationCallback: true });
    assert.equal(short.status, "error");
    assert.equal(short.error.errorCode, "PASSWORD_TOO_SHORT");
    const wrong = await apps().client.signInWithCredential({ email, password: "wrong-horse" });
    assert.equal(wrong.status, "error");
    assert.equal(wrong.error.errorCode, "EMAIL_PASSWORD_MISMATCH");

    const signIn = await client.signInWithCredential({ email, password: PASSWORD });
    assert.equal(signIn.status, "ok", `sign-in: ${signIn.error}`);
    user = await client.getUser({ or: "throw" });
    assert.equal(user.primaryEmail, email);
    assert.deepEqual(await syncRow(user.id), row, "a sign-in alone changes no synced row");

    await user.update({ displayName: "Client Named 🚲" });
    row = await waitRow(user.id, (r) => r.name === "Client Named 🚲", "updated");
    assert.notEqual(row.updated_at, null);
    assert.equal(row.raw_json.display_name, "Client Named 🚲");

    // The access token verifies with a standard JWKS verifier against jwks_url.
    const jwksUrl = ctx.auth.jwks_url;
    const issuer = `${ctx.baseUrl}/api/v1/projects/${ctx.auth.auth_provider_project_id}`;
    assert.equal(jwksUrl, `${issuer}/.well-known/jwks.json`);
    const jwks = createRemoteJWKSet(new URL(jwksUrl));
    const verifyOpts = { issuer, audience: ctx.auth.auth_provider_project_id,
      algorithms: ["ES256"] };
    const { accessToken: first, refreshToken } = await user.currentSession.getTokens();
    const { payload } = await jwtVerify(first, jwks, verifyOpts);
    assert.equal(payload.sub, user.id);
    assert.equal(payload.name, "Client Named 🚲");
    assert.equal(typeof payload.aud, "string");
    assert.equal(payload.exp - payload.iat, ACCESS_TTL_SECONDS);
    assert.equal(decodeProtectedHeader(first).alg, "ES256");

    // Wait past the token's expiry: the SDK must refresh through POST /auth/oauth/token.
    await sleep(Math.max(0, payload.exp * 1000 - Date.now()) + 1500);
    await assert.rejects(jwtVerify(first, jwks, verifyOpts), errors.JWTExpired);
    const mark = ctx.requests.length;
    const fresh = await client.getAccessToken();
    assert.ok(fresh && fresh !== first, "no new access token after expiry");
    assert.ok(ctx.requests.slice(mark).includes(`POST ${ctx.baseUrl}/api/v1/auth/oauth/token`),
      `no refresh through the token endpoint: ${ctx.requests.slice(mark).join(", ")}`);
    const verified = await jwtVerify(fresh, jwks, verifyOpts);
    assert.equal(verified.payload.sub, user.id);
    assert.equal(decodeJwt(fresh).refresh_token_id, payload.refresh_token_id);
    user = await client.getUser({ or: "throw" });
    await user.update({ displayName: "After Refresh" });
    await waitRow(user.id, (r) => r.name === "After Refresh", "updated after the refresh");

    await user.signOut();
    assert.equal(await client.getUser(), null);
    const res = await fetch(`${ctx.baseUrl}/api/v1/auth/oauth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken,
        client_id: ctx.auth.auth_provider_project_id,
        client_secret: ctx.auth.pub_client_key }),
    });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("x-stack-known-error"), "REFRESH_TOKEN_NOT_FOUND_OR_EXPIRED");
    row = await syncRow(user.id);
    assert.equal(row.deleted_at, null, "sign-out does not delete the user");
  });

test("the SDK sent every request to our loopback server", () => {
  assert.ok(ctx.requests.length > 10);
  const elsewhere = ctx.requests.filter((r) => !r.split(" ")[1].startsWith(`${ctx.baseUrl}/`));
  assert.deepEqual(elsewhere, []);
});
