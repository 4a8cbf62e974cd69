// @neon/sdk 6.1.2 against neonauth, with only baseUrl changed: its raw functions for the
// project-level calls (projects, branches, databases, roles, connection URI, the legacy Neon
// Auth operations and create user).

import "./net-guard.mjs";

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { createNeonClient, raw } from "@neon/sdk";

import { blockedConnections } from "./net-guard.mjs";
import { assertGeneralError, need, parsePgURI, pick, PROJECT_FIELDS, short } from "./common.mjs";
import { startServer } from "./server.mjs";
import { assertSpec } from "./spec.mjs";

let server;
let neon;

before(async () => {
  server = await startServer();
  neon = createNeonClient({ apiKey: server.apiKey, baseUrl: server.baseURL,
    requestTimeoutMs: 30_000 });
});

after(async () => {
  await server?.stop();
  assert.deepEqual(blockedConnections(), [], "a client tried to reach a non-loopback host");
});

/** Calls a raw function with the client; returns status, data and the SDK's error. */
async function call(fn, options = {}) {
  const r = await fn({ client: neon.client, ...options });
  return { status: r.response?.status, data: r.data, error: r.error,
    body: r.error ? r.error.body : r.data };
}

/** A raw call that must succeed per the spec: checks status and body, returns the body. */
async function ok(operationId, fn, options) {
  const r = await call(fn, options);
  assert.equal(r.error, undefined,
    `${operationId}: the SDK reports ${r.error?.kind} error, status ${r.status}: ` +
    `${r.error?.message} ${short(r.error?.body)}`);
  assertSpec(operationId, r.status, r.data);
  return r.data;
}

const s = {};
const provider = "stack";

describe("@neon/sdk raw: projects, branches, databases, roles", () => {
  test("createProject: 201 CreatedProject", async () => {
    const body = await ok("createProject", raw.createProject,
      { body: { project: { name: "e2e-neon-sdk" } } });
    s.created = body;
    assert.equal(body.project.name, "e2e-neon-sdk");
    assert.equal(body.branch.default, true);
    assert.equal(body.branch.project_id, body.project.id);
    assert.deepEqual(body.databases.map((d) => [d.name, d.owner_name]), [["neondb", "neondb_owner"]]);
  });

  test("listProjects: 200, the project with the fields createProject gave", async () => {
    const { project } = need(s.created, "createProject's answer");
    const body = await ok("listProjects", raw.listProjects, { query: {} });
    const listed = body.projects.find((p) => p.id === project.id);
    assert.ok(listed, short(body.projects));
    assert.deepEqual(pick(listed, PROJECT_FIELDS), pick(project, PROJECT_FIELDS));
  });

  test("getProject: 200 {project}", async () => {
    const { project } = need(s.created, "createProject's answer");
    const body = await ok("getProject", raw.getProject, { path: { project_id: project.id } });
    assert.deepEqual(pick(body.project, PROJECT_FIELDS), pick(project, PROJECT_FIELDS));
  });

  test("getProject of an unknown project: the SDK's not_found error", async () => {
    const r = await call(raw.getProject, { path: { project_id: "no-such-project-123456" } });
    assert.equal(r.status, 404);
    assert.equal(r.error?.kind, "not_found", short(r.error));
    assertGeneralError(r.error.body, "getProject 404");
    assert.equal(typeof r.error.requestId, "string", "the SDK finds the request id");
  });

  test("listProjectBranches: 200, the default branch", async () => {
    const { project, branch } = need(s.created, "createProject's answer");
    const body = await ok("listProjectBranches", raw.listProjectBranches,
      { path: { project_id: project.id } });
    const fields = ["id", "project_id", "name", "default", "created_at"];
    assert.deepEqual(body.branches.map((b) => pick(b, fields)), [pick(branch, fields)]);
  });

  test("listProjectBranchDatabases: 200", async () => {
    const { project, branch, databases } = need(s.created, "createProject's answer");
    const body = await ok("listProjectBranchDatabases", raw.listProjectBranchDatabases,
      { path: { project_id: project.id, branch_id: branch.id } });
    const fields = ["id", "branch_id", "name", "owner_name", "created_at"];
    assert.deepEqual(body.databases.map((d) => pick(d, fields)), databases.map((d) => pick(d, fields)));
  });

  test("listProjectBranchRoles: 200", async () => {
    const { project, branch } = need(s.created, "createProject's answer");
    const body = await ok("listProjectBranchRoles", raw.listProjectBranchRoles,
      { path: { project_id: project.id, branch_id: branch.id } });
    assert.ok(body.roles.some((r) => r.name === "neondb_owner" && r.branch_id === branch.id),
      short(body.roles));
  });

  test("getProjectBranchRolePassword: 200, the owner's password", async () => {
    const { project, branch, roles } = need(s.created, "createProject's answer");
    const body = await ok("getProjectBranchRolePassword", raw.getProjectBranchRolePassword,
      { path: { project_id: project.id, branch_id: branch.id, role_name: "neondb_owner" } });
    assert.equal(body.password, roles.find((r) => r.name === "neondb_owner").password);
  });

  test("getConnectionUri: 200 {uri}, the URI createProject returned", async () => {
    const { project, branch, connection_uris: uris } = need(s.created, "createProject's answer");
    const body = await ok("getConnectionURI", raw.getConnectionUri, {
      path: { project_id: project.id },
      query: { branch_id: branch.id, database_name: "neondb", role_name: "neondb_owner" },
    });
    assert.equal(body.uri, uris[0].connection_uri);
    const u = parsePgURI(body.uri);
    assert.deepEqual(pick(u, ["user", "database"]), { user: "neondb_owner", database: "neondb" });
  });
});

describe("@neon/sdk raw: legacy project-level Neon Auth", () => {
  test("createNeonAuthIntegration: 201 with keys", async () => {
    const { project, branch } = need(s.created, "createProject's answer");
    const body = await ok("createNeonAuthIntegration", raw.createNeonAuthIntegration, {
      body: { auth_provider: provider, project_id: project.id, branch_id: branch.id,
        database_name: "neondb" },
    });
    s.auth = body;
    assert.equal(body.auth_provider, provider);
    assert.equal(body.schema_name, "neon_auth");
    assert.equal(body.table_name, "users_sync");
    assert.ok(body.pub_client_key.length > 0 && body.secret_server_key.length > 0);
    assert.ok(body.jwks_url.startsWith(`${server.origin}/`), body.jwks_url);
  });

  test("createNeonAuthIntegration again: 409, the SDK's api error", async () => {
    const { project, branch } = need(s.created, "createProject's answer");
    const r = await call(raw.createNeonAuthIntegration, {
      body: { auth_provider: provider, project_id: project.id, branch_id: branch.id },
    });
    assert.equal(r.status, 409, short(r.body));
    assert.equal(r.error?.kind, "api");
    assertGeneralError(r.error.body, "second create");
  });

  test("listNeonAuthIntegrations: 200, one integration", async () => {
    const { project, branch } = need(s.created, "createProject's answer");
    const auth = need(s.auth, "createNeonAuthIntegration's answer");
    const body = await ok("listNeonAuthIntegrations", raw.listNeonAuthIntegrations,
      { path: { project_id: project.id } });
    assert.deepEqual(body.data.map((i) => pick(i, ["auth_provider", "auth_provider_project_id",
      "branch_id", "db_name"])), [{ auth_provider: provider,
      auth_provider_project_id: auth.auth_provider_project_id, branch_id: branch.id,
      db_name: "neondb" }]);
  });

  test("createNeonAuthProviderSdkKeys: 201 for the same auth project", async () => {
    const { project } = need(s.created, "createProject's answer");
    const auth = need(s.auth, "createNeonAuthIntegration's answer");
    const body = await ok("createNeonAuthProviderSDKKeys", raw.createNeonAuthProviderSdkKeys,
      { body: { project_id: project.id, auth_provider: provider } });
    assert.equal(body.auth_provider_project_id, auth.auth_provider_project_id);
    assert.ok(body.pub_client_key.length > 0 && body.secret_server_key.length > 0);
  });

  test("createNeonAuthNewUser: 201 {id}", async () => {
    const { project } = need(s.created, "createProject's answer");
    const body = await ok("createNeonAuthNewUser", raw.createNeonAuthNewUser, {
      body: { project_id: project.id, auth_provider: provider, email: "sdk-user@example.com" },
    });
    assert.equal(typeof body.id, "string");
    assert.ok(body.id.length > 0);
  });

  test("transferNeonAuthProviderProject: 200 {url}", async () => {
    const { project } = need(s.created, "createProject's answer");
    const body = await ok("transferNeonAuthProviderProject", raw.transferNeonAuthProviderProject,
      { body: { project_id: project.id, auth_provider: provider } });
    assert.equal(new URL(body.url).origin, server.origin, body.url);
  });

  test("deleteNeonAuthIntegration with delete_data: 200, then none listed", async () => {
    const { project } = need(s.created, "createProject's answer");
    const r = await call(raw.deleteNeonAuthIntegration, {
      path: { project_id: project.id, auth_provider: provider }, body: { delete_data: true },
    });
    assert.equal(r.error, undefined, short(r.error));
    assert.equal(r.status, 200);
    const body = await ok("listNeonAuthIntegrations", raw.listNeonAuthIntegrations,
      { path: { project_id: project.id } });
    assert.deepEqual(body.data, []);
  });
});

// The ergonomic layer on top of the same endpoints: createAndConnect waits for the
// operations (getProjectOperation) and derives the connection string from connection_uris;
// list() walks pagination.cursor until a page is empty.
describe("@neon/sdk ergonomic client on the same endpoints", () => {
  test("projects.createAndConnect: the project and the direct connection string", async () => {
    const { data, error } = await neon.projects.createAndConnect({ name: "e2e-neon-sdk-2",
      pooled: false });
    assert.equal(error, undefined, `${error?.kind}: ${error?.message} ${short(error?.body)}`);
    s.second = data.project;
    const r = await ok("getConnectionURI", raw.getConnectionUri, {
      path: { project_id: data.project.id },
      query: { database_name: "neondb", role_name: "neondb_owner" },
    });
    assert.equal(data.connectionString, r.uri);
  });

  test("projects.list({limit: 1}).all(): both projects, each once", async () => {
    const first = need(s.created, "createProject's answer").project.id;
    const second = need(s.second, "the second project").id;
    const { data, error } = await neon.projects.list({ limit: 1 }).all();
    assert.equal(error, undefined, `${error?.kind}: ${error?.message}`);
    assert.deepEqual(data.map((p) => p.id).sort(), [first, second].sort());
  });
});

describe("@neon/sdk raw: deleting", () => {
  test("deleteProject: 200 {project}, then not_found", async () => {
    const { project } = need(s.created, "createProject's answer");
    const body = await ok("deleteProject", raw.deleteProject, { path: { project_id: project.id } });
    assert.equal(body.project.id, project.id);
    const r = await call(raw.getProject, { path: { project_id: project.id } });
    assert.equal(r.error?.kind, "not_found", short(r.error));
  });
});
