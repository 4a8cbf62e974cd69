// Blocks and records every TCP connection to a host that is not loopback.
//
// Imported by the test files, and preloaded into neonctl with `node --import`, so that no
// client can reach Neon's hosts (console, OAuth, analytics) while it is under test. A
// blocked connection fails with an error; when NEON_E2E_NET_LOG is set, each blocked
// "host:port" is appended to that file as one line, so the parent process can assert that
// nothing tried.

import { appendFileSync } from "node:fs";
import net from "node:net";

const blocked = [];

function isLoopback(host) {
  if (host === undefined || host === null || host === "") return true; // Node's default: localhost
  const h = String(host).replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1" || /^127\./.test(h) ||
    /^::ffff:127\./.test(h);
}

function target(args) {
  let a = args[0];
  if (Array.isArray(a)) a = a[0]; // net.connect passes its normalized [options, cb]
  if (a !== null && typeof a === "object") {
    if (a.path) return null; // Unix socket
    return { host: a.host ?? a.hostname, port: a.port };
  }
  if (typeof a === "string" && !/^\d+$/.test(a)) return null; // connect(path)
  return { host: typeof args[1] === "string" ? args[1] : undefined, port: a };
}

const connect = net.Socket.prototype.connect;
if (!connect.neonE2EGuard) {
  const guarded = function (...args) {
    const t = target(args);
    if (t && !isLoopback(t.host)) {
      const where = `${t.host}:${t.port}`;
      blocked.push(where);
      if (process.env.NEON_E2E_NET_LOG) {
        try { appendFileSync(process.env.NEON_E2E_NET_LOG, `${where}\n`); } catch { /* ignore */ }
      }
      const err = Object.assign(new Error(`e2e net guard: blocked a connection to ${where}`),
        { code: "ECONNREFUSED" });
      process.nextTick(() => this.destroy(err));
      return this;
    }
    return connect.apply(this, args);
  };
  guarded.neonE2EGuard = true;
  net.Socket.prototype.connect = guarded;
}

/** The non-loopback "host:port" targets blocked in this process so far. */
export const blockedConnections = () => [...blocked];
