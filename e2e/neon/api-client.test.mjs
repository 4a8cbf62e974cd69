// @neondatabase/api-client 2.7.3 against neonauth, with only the base URL changed.

import "./net-guard.mjs";

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { createApiClient } from "@neondatabase/api-client";

import { blockedConnections } from "./net-guard.mjs";
import { assertGeneralError, need, parsePgURI, pick, PROJECT_FIELDS, short } from "./common.mjs";
import { startServer } from "./server.mjs";
import { assertSpec } from "./spec.mjs";

let server;
let api;
const client = (apiKey) => createApiClient({ apiKey, baseURL: server.baseURL, timeout: 30_000 });

/** The status and body of a call, whether it succeeded or not. */
async function res(promise) {
  try {
    const r = await promise;
    return { status: r.status, data: r.data };
  } catch (err) {
    if (!err.response) throw err;
    return { status: err.response.status, data: err.response.data };
  }
}

/** Runs a call that must succeed per the spec, checks status and body, returns the body. */
async function ok(operationId, promise) {
  const r = await res(promise);
  assertSpec(operationId, r.status, r.data);
  return r.data;
}

before(async () => {
  server = await startServer();
  api = client(server.apiKey);
});

after(async () => {
  await server?.stop();
  assert.deepEqual(blockedConnections(), [], "a client tried to reach a non-loopback host");
});

// State built up by the tests, in order.
const s = {};

describe("projects", () => {
  test("createProject: 201 CreatedProject with the spec's defaults", async () => {
    const body = await ok("createProject", api.createProject({ project: { name: "e2e-api-client" } }));
    s.created = body;
    const { project, branch, databases, roles, endpoints, connection_uris: uris, operations } = body;
    assert.equal(project.name, "e2e-api-client");
    assert.match(project.id, /^[a-z0-9-]{1,60}$/);
    assert.equal(branch.project_id, project.id);
    assert.equal(branch.name, "main", "project.branch.name defaults to main");
    assert.equal(branch.default, true, "the first branch is the default branch");
    assert.equal(databases.length, 1);
    assert.equal(databases[0].name, "neondb", "database_name defaults to neondb");
    assert.equal(databases[0].branch_id, branch.id);
    assert.equal(databases[0].owner_name, "neondb_owner", "role_name defaults to neondb_owner");
    assert.ok(roles.some((r) => r.name === "neondb_owner" && r.branch_id === branch.id),
      `roles: ${short(roles)}`);
    const owner = roles.find((r) => r.name === "neondb_owner");
    assert.equal(typeof owner.password, "string", "createProject returns the owner's password");
    assert.ok(endpoints.length >= 1, "createProject returns the branch's compute endpoint");
    assert.equal(endpoints[0].branch_id, branch.id);
    assert.equal(endpoints[0].project_id, project.id);
    assert.equal(endpoints[0].type, "read_write");
    assert.equal(uris.length, 1);
    const p = uris[0].connection_parameters;
    assert.deepEqual(pick(p, ["database", "role", "password"]),
      { database: "neondb", role: "neondb_owner", password: owner.password });
    const u = parsePgURI(uris[0].connection_uri);
    assert.deepEqual(pick(u, ["user", "password", "database", "host"]),
      { user: p.role, password: p.password, database: p.database, host: p.host },
      "connection_uri and connection_parameters disagree");
    for (const op of operations) {
      assert.equal(op.project_id, project.id);
    }
  });

  // neonctl connection-string builds `postgresql://<endpoint.host>/<db>` and reads no port
  // field (neonctl's commands/connection_string.js), as Neon's hosts all listen on 5432. So
  // endpoint.host must be the host[:port] of connection_uri for that URI to work.
  test("createProject: endpoint.host is the host[:port] of connection_uri", async () => {
    const { endpoints, connection_uris: uris } = need(s.created, "createProject's answer");
    const uriHost = new URL(uris[0].connection_uri).host;
    assert.equal(new URL(`postgresql://${endpoints[0].host}`).host, uriHost,
      `endpoints[0].host is ${JSON.stringify(endpoints[0].host)} (port field ` +
      `${JSON.stringify(endpoints[0].port)}), connection_uri's host is ${uriHost}`);
  });

  test("getProjectOperation: every operation of createProject finishes", async () => {
    const { project, operations } = need(s.created, "createProject's answer");
    for (const op of operations) {
      let last;
      for (let i = 0; i < 100; i++) {
        last = await ok("getProjectOperation", api.getProjectOperation(project.id, op.id));
        if (!["scheduling", "running"].includes(last.operation.status)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(last.operation.id, op.id);
      assert.equal(last.operation.status, "finished", short(last));
    }
  });

  test("createProject with branch.database_name and branch.role_name", async () => {
    const body = await ok("createProject", api.createProject({
      project: { name: "e2e-api-client-2", branch: { name: "trunk", database_name: "appdb",
        role_name: "app_owner" } },
    }));
    s.second = body;
    assert.equal(body.branch.name, "trunk");
    assert.deepEqual(body.databases.map((d) => [d.name, d.owner_name]), [["appdb", "app_owner"]]);
    assert.ok(body.roles.some((r) => r.name === "app_owner"), short(body.roles));
    const u = parsePgURI(body.connection_uris[0].connection_uri);
    assert.equal(u.user, "app_owner");
    assert.equal(u.database, "appdb");
  });

  test("listProjects: 200, both projects, same fields as createProject", async () => {
    const body = await ok("listProjects", api.listProjects({}));
    const { project } = need(s.created, "createProject's answer");
    const listed = body.projects.find((p) => p.id === project.id);
    assert.ok(listed, `project ${project.id} not listed: ${short(body.projects)}`);
    assert.deepEqual(pick(listed, PROJECT_FIELDS), pick(project, PROJECT_FIELDS));
    assert.ok(body.projects.some((p) => p.id === s.second?.project.id));
  });

  test("listProjects: pages of limit=1 walk both projects through pagination.cursor", async () => {
    const seen = [];
    let cursor;
    for (let page = 0; page < 5; page++) {
      const body = await ok("listProjects", api.listProjects({ limit: 1, cursor }));
      assert.ok(body.projects.length <= 1, `limit=1 gave ${body.projects.length} projects`);
      seen.push(...body.projects.map((p) => p.id));
      if (body.projects.length < 1) break;
      assert.equal(typeof body.pagination?.cursor, "string",
        `a full page must carry pagination.cursor: ${short(body)}`);
      cursor = body.pagination.cursor;
    }
    assert.deepEqual([...seen].sort(),
      [need(s.created, "first project").project.id, need(s.second, "second project").project.id].sort());
  });

  test("getProject: 200 {project}, same fields as createProject", async () => {
    const { project } = need(s.created, "createProject's answer");
    const body = await ok("getProject", api.getProject(project.id));
    assert.deepEqual(pick(body.project, PROJECT_FIELDS), pick(project, PROJECT_FIELDS));
  });

  test("getProject of an unknown project: 404 GeneralError", async () => {
    const r = await res(api.getProject("no-such-project-123456"));
    assert.equal(r.status, 404, short(r));
    assertGeneralError(r.data, "getProject 404");
  });
});

describe("branches, databases, roles, connection URI", () => {
  test("listProjectBranches: 200, the default branch", async () => {
    const { project, branch } = need(s.created, "createProject's answer");
    const body = await ok("listProjectBranches", api.listProjectBranches({ projectId: project.id }));
    assert.equal(body.branches.length, 1, short(body.branches));
    const fields = ["id", "project_id", "name", "default", "current_state", "created_at"];
    assert.deepEqual(pick(body.branches[0], fields), pick(branch, fields));
    assert.equal(body.branches[0].default, true);
  });

  test("listProjectBranchDatabases: 200, the database createProject made", async () => {
    const { project, branch, databases } = need(s.created, "createProject's answer");
    const body = await ok("listProjectBranchDatabases",
      api.listProjectBranchDatabases(project.id, branch.id));
    const fields = ["id", "branch_id", "name", "owner_name", "created_at"];
    assert.deepEqual(body.databases.map((d) => pick(d, fields)), databases.map((d) => pick(d, fields)));
  });

  test("listProjectBranchRoles: 200, the owner role", async () => {
    const { project, branch } = need(s.created, "createProject's answer");
    const body = await ok("listProjectBranchRoles", api.listProjectBranchRoles(project.id, branch.id));
    const owner = body.roles.find((r) => r.name === "neondb_owner");
    assert.ok(owner, short(body.roles));
    assert.equal(owner.branch_id, branch.id);
  });

  test("getProjectBranchRolePassword: 200, the password from createProject", async () => {
    const { project, branch, roles } = need(s.created, "createProject's answer");
    const body = await ok("getProjectBranchRolePassword",
      api.getProjectBranchRolePassword(project.id, branch.id, "neondb_owner"));
    assert.equal(body.password, roles.find((r) => r.name === "neondb_owner").password);
  });

  test("getProjectBranchRolePassword of an unknown role: 404 GeneralError", async () => {
    const { project, branch } = need(s.created, "createProject's answer");
    const r = await res(api.getProjectBranchRolePassword(project.id, branch.id, "no_such_role"));
    assert.equal(r.status, 404, short(r));
    assertGeneralError(r.data, "reveal_password 404");
  });

  test("getConnectionUri: 200 {uri}, the URI createProject returned", async () => {
    const { project, branch, connection_uris: uris } = need(s.created, "createProject's answer");
    const body = await ok("getConnectionURI", api.getConnectionUri({
      projectId: project.id, database_name: "neondb", role_name: "neondb_owner",
    }));
    assert.equal(body.uri, uris[0].connection_uri);
    const withBranch = await ok("getConnectionURI", api.getConnectionUri({
      projectId: project.id, branch_id: branch.id, database_name: "neondb",
      role_name: "neondb_owner",
    }));
    assert.equal(withBranch.uri, uris[0].connection_uri);
  });
});

describe("legacy project-level Neon Auth", () => {
  const provider = "stack";

  test("createNeonAuthIntegration: 201 with keys, neon_auth.users_sync and a loopback JWKS", async () => {
    const { project, branch } = need(s.created, "createProject's answer");
    const body = await ok("createNeonAuthIntegration", api.createNeonAuthIntegration({
      auth_provider: provider, project_id: project.id, branch_id: branch.id,
      database_name: "neondb", role_name: "neondb_owner",
    }));
    s.auth = body;
    assert.equal(body.auth_provider, provider);
    assert.equal(body.schema_name, "neon_auth");
    assert.equal(body.table_name, "users_sync");
    assert.ok(body.auth_provider_project_id.length > 0);
    assert.ok(body.pub_client_key.length > 0, "Stack keys are returned on create");
    assert.ok(body.secret_server_key.length > 0, "Stack keys are returned on create");
    assert.ok(body.jwks_url.startsWith(`${server.origin}/`),
      `jwks_url ${body.jwks_url} is not served by neonauth (${server.origin})`);
    const jwks = await fetch(body.jwks_url);
    assert.equal(jwks.status, 200);
    const set = await jwks.json();
    assert.ok(Array.isArray(set.keys) && set.keys.length > 0, short(set));
  });

  test("createNeonAuthIntegration again: 409 GeneralError", async () => {
    const { project, branch } = need(s.created, "createProject's answer");
    const r = await res(api.createNeonAuthIntegration({
      auth_provider: provider, project_id: project.id, branch_id: branch.id,
      database_name: "neondb", role_name: "neondb_owner",
    }));
    assert.equal(r.status, 409, short(r));
    assertGeneralError(r.data, "second createNeonAuthIntegration");
  });

  test("listNeonAuthIntegrations: 200, the integration, without keys", async () => {
    const { project, branch } = need(s.created, "createProject's answer");
    const auth = need(s.auth, "createNeonAuthIntegration's answer");
    const body = await ok("listNeonAuthIntegrations", api.listNeonAuthIntegrations(project.id));
    assert.equal(body.data.length, 1, short(body));
    const it = body.data[0];
    assert.deepEqual(
      pick(it, ["auth_provider", "auth_provider_project_id", "branch_id", "db_name", "jwks_url"]),
      { auth_provider: provider, auth_provider_project_id: auth.auth_provider_project_id,
        branch_id: branch.id, db_name: "neondb", jwks_url: auth.jwks_url });
    assert.ok(!("pub_client_key" in it) && !("secret_server_key" in it),
      `GET must not return keys: ${short(it)}`);
  });

  test("createNeonAuthProviderSdkKeys: 201, new keys for the same auth project", async () => {
    const { project } = need(s.created, "createProject's answer");
    const auth = need(s.auth, "createNeonAuthIntegration's answer");
    const body = await ok("createNeonAuthProviderSDKKeys",
      api.createNeonAuthProviderSdkKeys({ project_id: project.id, auth_provider: provider }));
    assert.equal(body.auth_provider, provider);
    assert.equal(body.auth_provider_project_id, auth.auth_provider_project_id);
    assert.equal(body.schema_name, "neon_auth");
    assert.equal(body.table_name, "users_sync");
    assert.ok(body.pub_client_key.length > 0 && body.secret_server_key.length > 0);
    assert.notEqual(body.secret_server_key, auth.secret_server_key, "new keys were generated");
    s.keys = body;
  });

  test("createNeonAuthNewUser: 201 {id}, and the user exists in the auth project", async () => {
    const { project } = need(s.created, "createProject's answer");
    const keys = need(s.keys ?? s.auth, "auth keys");
    const body = await ok("createNeonAuthNewUser", api.createNeonAuthNewUser({
      project_id: project.id, auth_provider: provider, email: "e2e-user@example.com",
      name: "E2E User",
    }));
    assert.ok(body.id.length > 0);
    const r = await fetch(`${server.origin}/api/v1/users/${encodeURIComponent(body.id)}`, {
      headers: {
        "x-stack-project-id": keys.auth_provider_project_id,
        "x-stack-access-type": "server",
        "x-stack-secret-server-key": keys.secret_server_key,
      },
    });
    const user = await r.json();
    assert.equal(r.status, 200, short(user));
    assert.equal(user.id, body.id);
    assert.equal(user.primary_email, "e2e-user@example.com");
    assert.equal(user.display_name, "E2E User");
  });

  test("transferNeonAuthProviderProject: 200 {url} on neonauth's origin", async () => {
    const { project } = need(s.created, "createProject's answer");
    const body = await ok("transferNeonAuthProviderProject",
      api.transferNeonAuthProviderProject({ project_id: project.id, auth_provider: provider }));
    assert.equal(new URL(body.url).origin, server.origin, body.url);
  });

  test("deleteNeonAuthIntegration: 200, then the list is empty", async () => {
    const { project } = need(s.created, "createProject's answer");
    const r = await res(api.deleteNeonAuthIntegration(project.id, provider, {}));
    assert.equal(r.status, 200, short(r));
    const body = await ok("listNeonAuthIntegrations", api.listNeonAuthIntegrations(project.id));
    assert.deepEqual(body.data, []);
  });

  test("createNeonAuthIntegration for an unknown project: 404 GeneralError", async () => {
    const r = await res(api.createNeonAuthIntegration({
      auth_provider: provider, project_id: "no-such-project-123456", branch_id: "br-no-such-123456",
      database_name: "neondb", role_name: "neondb_owner",
    }));
    assert.equal(r.status, 404, short(r));
    assertGeneralError(r.data, "createNeonAuthIntegration 404");
  });
});

describe("API keys", () => {
  test("createApiKey: 200, a key that works", async () => {
    const body = await ok("createApiKey", api.createApiKey({ key_name: "e2e-key" }));
    assert.equal(body.name, "e2e-key");
    assert.ok(body.key.length > 0);
    s.apiKey = body;
    const other = await ok("listProjects", client(body.key).listProjects({}));
    assert.ok(Array.isArray(other.projects));
  });

  test("listApiKeys: 200, the new key without its secret", async () => {
    const created = need(s.apiKey, "createApiKey's answer");
    const body = await ok("listApiKeys", api.listApiKeys());
    const it = body.find((k) => k.id === created.id);
    assert.ok(it, short(body));
    assert.equal(it.name, "e2e-key");
    assert.equal(it.created_at, created.created_at);
    assert.ok(!("key" in it), "list must not return the key");
  });

  test("revokeApiKey: 200 revoked, then the key gets 401", async () => {
    const created = need(s.apiKey, "createApiKey's answer");
    const body = await ok("revokeApiKey", api.revokeApiKey(created.id));
    assert.equal(body.id, created.id);
    assert.equal(body.revoked, true);
    const r = await res(client(created.key).listProjects({}));
    assert.equal(r.status, 401, short(r));
    assertGeneralError(r.data, "revoked key");
  });

  test("a wrong API key: 401 GeneralError", async () => {
    const r = await res(client("napi_wrong").listProjects({}));
    assert.equal(r.status, 401, short(r));
    assertGeneralError(r.data, "wrong key");
  });
});

// Calls that neonctl and @neon/sdk make on their own (neon-api.md §4.1): getAuthDetails and
// getCurrentUserInfo (neonctl with analytics on), getCurrentUserOrganizations (neonctl without
// --project-id), listSharedProjects (neonctl projects list), listProjectBranchEndpoints
// (neonctl connection-string).
describe("calls official clients make implicitly", () => {
  test("getAuthDetails: 200 {account_id, auth_method: api_key_user}", async () => {
    const body = await ok("getAuthDetails", api.getAuthDetails());
    assert.equal(body.auth_method, "api_key_user");
    assert.equal(body.account_id, need(s.created, "createProject's answer").project.owner_id);
  });

  test("getCurrentUserInfo: 200 CurrentUserInfoResponse", async () => {
    const body = await ok("getCurrentUserInfo", api.getCurrentUserInfo());
    assert.equal(body.id, need(s.created, "createProject's answer").project.owner_id);
  });

  test("getCurrentUserOrganizations: 200 {organizations}", async () => {
    await ok("getCurrentUserOrganizations", api.getCurrentUserOrganizations());
  });

  test("listSharedProjects: 200 {projects: []}", async () => {
    const body = await ok("listSharedProjects", api.listSharedProjects({}));
    assert.deepEqual(body.projects, []);
  });

  test("listProjectBranchEndpoints: 200, the endpoint createProject returned", async () => {
    const { project, branch, endpoints } = need(s.created, "createProject's answer");
    const body = await ok("listProjectBranchEndpoints",
      api.listProjectBranchEndpoints(project.id, branch.id));
    const fields = ["id", "host", "branch_id", "project_id", "type"];
    assert.deepEqual(body.endpoints.map((e) => pick(e, fields)), endpoints.map((e) => pick(e, fields)));
  });
});

describe("deleting", () => {
  test("deleteProject: 200 {project}, then 404 and gone from the list", async () => {
    const { project } = need(s.second, "second project");
    const body = await ok("deleteProject", api.deleteProject(project.id));
    assert.equal(body.project.id, project.id);
    const r = await res(api.getProject(project.id));
    assert.equal(r.status, 404, short(r));
    assertGeneralError(r.data, "getProject after delete");
    const list = await ok("listProjects", api.listProjects({}));
    assert.ok(!list.projects.some((p) => p.id === project.id));
  });
});
