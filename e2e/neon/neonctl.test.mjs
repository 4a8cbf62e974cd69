// neonctl 5.0.1 against neonauth, run as a child process with only --api-host changed.
//
// Every run gets --api-host <loopback>/api/v2 --api-key K --no-analytics --output json, a
// temporary HOME (so no real credentials are read or written), no NEON_* variables from
// the environment, stdin closed (no prompts), and net-guard.mjs preloaded: a connection to
// any non-loopback host (console, OAuth, analytics) is blocked and fails the test.

import "./net-guard.mjs";

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { blockedConnections } from "./net-guard.mjs";
import { need, parsePgURI, pick, PROJECT_FIELDS, short } from "./common.mjs";
import { requestLines, startServer } from "./server.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const neonctlPkg = require.resolve("neonctl/package.json");
const neonctlBin = resolve(dirname(neonctlPkg), require(neonctlPkg).bin.neonctl);
const RUN_TIMEOUT_MS = 30_000;

let server;
let home;
let work;

before(async () => {
  server = await startServer();
  home = await mkdtemp(join(tmpdir(), "neonauth-e2e-neonctl-home-"));
  work = join(home, "work");
  await mkdir(work);
});

after(async () => {
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
  assert.deepEqual(blockedConnections(), [], "the test process tried to reach a non-loopback host");
});

let runs = 0;

/** Runs neonctl with the global flags; returns its exit code, output and parsed JSON. */
async function neonctl(args, { json = true, apiHost = server.baseURL, expectBlocked = false } = {}) {
  const netLog = join(home, `net-${++runs}.log`);
  const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, ".config"),
    NEON_E2E_NET_LOG: netLog, CI: "true", NO_COLOR: "1", FORCE_COLOR: "0" };
  for (const k of Object.keys(env)) {
    if (k.startsWith("NEON_") && k !== "NEON_E2E_NET_LOG") delete env[k];
    if (/^(https?|all|no)_proxy$/i.test(k)) delete env[k];
  }
  const full = [...args, "--api-host", apiHost, "--api-key", server.apiKey,
    "--no-analytics", "--output", "json"];
  const since = server.requests().length;
  const child = spawn(process.execPath,
    ["--import", join(here, "net-guard.mjs"), neonctlBin, ...full],
    { cwd: work, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d) => { stdout += d; });
  child.stderr.setEncoding("utf8").on("data", (d) => { stderr += d; });
  const timer = setTimeout(() => child.kill("SIGKILL"), RUN_TIMEOUT_MS);
  const code = await new Promise((r) => child.on("close", (c, sig) => r(c ?? sig)));
  clearTimeout(timer);
  await new Promise((r) => setTimeout(r, 50)); // let the server's access log catch up
  const blocked = (await readFile(netLog, "utf8").catch(() => "")).split("\n").filter(Boolean);
  const requests = requestLines(server, since);
  const what = `neonctl ${args.join(" ")}`;
  const report = `${what}\n  exit: ${code}\n  stderr: ${stderr.trim()}\n  stdout: ${short(stdout)}` +
    `\n  requests to neonauth:\n    ${requests.join("\n    ")}`;
  if (!expectBlocked) {
    assert.deepEqual(blocked, [], `${what} tried to reach non-loopback hosts\n${report}`);
  }
  for (const r of requests) {
    assert.ok(!/^GET \/api\/v2\/(auth|users\/me) /.test(r),
      `${what} made an analytics call despite --no-analytics: ${r}`);
  }
  let parsed;
  if (json && code === 0) {
    try {
      parsed = JSON.parse(stdout);
    } catch {
      assert.fail(`${what} printed no JSON\n${report}`);
    }
  }
  return { code, stdout, stderr, json: parsed, requests, report, blocked };
}

/** Runs neonctl and asserts that it exits 0. */
async function ok(args, opts) {
  const r = await neonctl(args, opts);
  assert.equal(r.code, 0, `neonctl failed\n${r.report}`);
  return r;
}

/** GET on neonauth's API directly: what the API returns, to compare neonctl's output with. */
async function apiGet(path) {
  const res = await fetch(`${server.baseURL}${path}`,
    { headers: { Authorization: `Bearer ${server.apiKey}` } });
  const body = await res.json();
  assert.equal(res.status, 200, `GET ${path}: ${res.status} ${short(body)}`);
  return body;
}

const s = {};

describe("neonctl", () => {
  // Proves that net-guard.mjs is loaded into neonctl, so that the empty "blocked" lists
  // asserted on every other run mean something. 192.0.2.1 is TEST-NET-1 (RFC 5737): the
  // guard refuses it before any packet is sent.
  test("the network guard is active inside neonctl", async () => {
    const r = await neonctl(["projects", "list"],
      { apiHost: "http://192.0.2.1/api/v2", expectBlocked: true });
    assert.notEqual(r.code, 0, r.report);
    assert.deepEqual([...new Set(r.blocked)], ["192.0.2.1:80"], r.report);
    assert.deepEqual(r.requests, [], r.report);
  });

  test("projects list with no projects: empty lists", async () => {
    const r = await ok(["projects", "list"]);
    assert.deepEqual(r.json, { projects: [], shared_with_you: [] }, r.report);
  });

  test("projects create: the project and its connection URI, as the API has them", async () => {
    const r = await ok(["projects", "create", "--name", "e2e-neonctl"]);
    const { project, connection_uris: uris } = r.json ?? {};
    assert.ok(project?.id, `no project in the output\n${r.report}`);
    s.project = project;
    assert.equal(project.name, "e2e-neonctl");
    const api = await apiGet(`/projects/${project.id}`);
    assert.deepEqual(pick(project, PROJECT_FIELDS), pick(api.project, PROJECT_FIELDS));
    assert.equal(uris?.length, 1, r.report);
    const { uri } = await apiGet(
      `/projects/${project.id}/connection_uri?database_name=neondb&role_name=neondb_owner`);
    assert.equal(uris[0].connection_uri, uri);
    s.uri = uri;
  });

  test("projects list: the project, field by field as GET /projects has it", async () => {
    const r = await ok(["projects", "list"]);
    const api = await apiGet("/projects");
    assert.deepEqual(r.json?.projects, api.projects, r.report);
    assert.deepEqual(r.json?.shared_with_you, [], r.report);
    assert.ok(api.projects.some((p) => p.id === need(s.project, "the created project").id));
  });

  test("branches list --project-id: as GET /projects/{id}/branches has them", async () => {
    const { id } = need(s.project, "the created project");
    const r = await ok(["branches", "list", "--project-id", id]);
    const api = await apiGet(`/projects/${id}/branches`);
    assert.deepEqual(r.json, api.branches, r.report);
    s.branch = api.branches.find((b) => b.default);
    assert.ok(s.branch, "the project has a default branch");
  });

  test("branches list without --project-id: the only project is found", async () => {
    const { id } = need(s.project, "the created project");
    const r = await ok(["branches", "list"]);
    const api = await apiGet(`/projects/${id}/branches`);
    assert.deepEqual(r.json, api.branches, r.report);
  });

  test("databases list: default branch, --branch <name> and --branch <id> agree with the API", async () => {
    const { id } = need(s.project, "the created project");
    const branch = need(s.branch, "the default branch");
    const api = await apiGet(`/projects/${id}/branches/${branch.id}/databases`);
    for (const extra of [[], ["--branch", branch.name], ["--branch", branch.id]]) {
      const r = await ok(["databases", "list", "--project-id", id, ...extra]);
      assert.deepEqual(r.json, api.databases, r.report);
    }
  });

  test("roles list: as GET …/roles has them", async () => {
    const { id } = need(s.project, "the created project");
    const branch = need(s.branch, "the default branch");
    const api = await apiGet(`/projects/${id}/branches/${branch.id}/roles`);
    for (const extra of [[], ["--branch", branch.name]]) {
      const r = await ok(["roles", "list", "--project-id", id, ...extra]);
      assert.deepEqual(r.json, api.roles, r.report);
    }
  });

  test("connection-string: the URI the API gives (role, password, host, port, database)", async () => {
    const { id } = need(s.project, "the created project");
    const want = parsePgURI(need(s.uri, "the API's connection URI"));
    const r = await ok(["connection-string", "--project-id", id, "--ssl", "omit"], { json: false });
    const got = parsePgURI(r.stdout.trim());
    const fields = ["user", "password", "host", "port", "database"];
    assert.deepEqual(pick(got, fields), pick(want, fields), r.report);
  });

  test("connection-string <branch> --extended: role, password, database and host as JSON", async () => {
    const { id } = need(s.project, "the created project");
    const branch = need(s.branch, "the default branch");
    const want = parsePgURI(need(s.uri, "the API's connection URI"));
    const r = await ok(["connection-string", branch.name, "--project-id", id, "--extended",
      "--ssl", "omit"]);
    assert.deepEqual(pick(r.json, ["role", "password", "database"]),
      { role: want.user, password: want.password, database: want.database }, r.report);
    const got = parsePgURI(r.json.connection_string);
    assert.deepEqual(pick(got, ["host", "port"]), pick(want, ["host", "port"]), r.report);
  });

  test("projects create --database --role: a second project with those names", async () => {
    const r = await ok(["projects", "create", "--name", "e2e-neonctl-2", "--database", "appdb",
      "--role", "app_owner"]);
    const { project } = r.json ?? {};
    assert.ok(project?.id, r.report);
    s.second = project;
    const branches = await apiGet(`/projects/${project.id}/branches`);
    const main = branches.branches.find((b) => b.default);
    const dbs = await ok(["databases", "list", "--project-id", project.id]);
    assert.deepEqual(dbs.json?.map((d) => [d.name, d.owner_name]), [["appdb", "app_owner"]],
      dbs.report);
    const roles = await apiGet(`/projects/${project.id}/branches/${main.id}/roles`);
    const rl = await ok(["roles", "list", "--project-id", project.id]);
    assert.deepEqual(rl.json, roles.roles, rl.report);
  });

  test("branches list without --project-id and two projects: neonctl asks for --project-id", async () => {
    need(s.second, "the second project");
    const r = await neonctl(["branches", "list"]);
    assert.equal(r.code, 1, r.report);
    assert.match(r.stderr, /Multiple projects found/, r.report);
  });
});
