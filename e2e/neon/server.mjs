// Starts `neonauth serve` for one test file and stops it at the end.
//
// The binary is NEONAUTH_BIN, or ../../bin/neonauth relative to this folder. It listens on
// 127.0.0.1:0 with a fresh temporary data directory; once it is ready it has written its
// address to <data dir>/listen-address and the admin API key to <data dir>/api-key, and
// GET /healthz answers 200.

import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

// NEONAUTH_BIN is taken relative to the working directory; the default relative to here.
export const binaryPath = () => (process.env.NEONAUTH_BIN
  ? resolve(process.env.NEONAUTH_BIN)
  : resolve(here, "../../bin/neonauth"));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function readTrimmed(path) {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch {
    return "";
  }
}

/**
 * @returns {Promise<{origin: string, baseURL: string, apiKey: string, dataDir: string,
 *   output: () => string, requests: () => {method: string, path: string, status: number}[],
 *   stop: () => Promise<void>}>}
 */
export async function startServer() {
  const dataDir = await mkdtemp(join(tmpdir(), "neonauth-e2e-neon-"));
  const bin = binaryPath();
  const child = spawn(
    bin,
    ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--bcrypt-cost", "4",
      "--unsafe-fast-storage"],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env } },
  );
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d) => { out += d; });
  child.stderr.setEncoding("utf8").on("data", (d) => { out += d; });
  let exited = null;
  const exitPromise = new Promise((r) => {
    child.on("exit", (code, signal) => { exited = { code, signal }; r(exited); });
    child.on("error", (err) => { exited = { code: null, signal: null, err }; r(exited); });
  });

  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      const t = setTimeout(() => { if (!exited) child.kill("SIGKILL"); }, STOP_TIMEOUT_MS);
      await exitPromise;
      clearTimeout(t);
    }
    await rm(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  let address = "";
  let apiKey = "";
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`neonauth serve (${bin}) exited before it was ready: ` +
        `${JSON.stringify(exited)}\n${out}`);
    }
    address ||= await readTrimmed(join(dataDir, "listen-address"));
    apiKey ||= await readTrimmed(join(dataDir, "api-key"));
    if (address && apiKey) {
      try {
        const res = await fetch(`http://${address}/healthz`);
        if (res.status === 200) break;
      } catch {
        // not listening yet
      }
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`neonauth serve was not ready after ${READY_TIMEOUT_MS} ms\n${out}`);
    }
    await sleep(50);
  }
  if (!/^127\.0\.0\.1:\d+$/.test(address)) {
    await stop();
    throw new Error(`neonauth listens on ${address}, not on loopback`);
  }

  const origin = `http://${address}`;
  return {
    origin,
    baseURL: `${origin}/api/v2`,
    apiKey,
    dataDir,
    output: () => out,
    /** The requests the server logged so far (its access log), oldest first. */
    requests: () => {
      const reqs = [];
      for (const line of out.split("\n")) {
        if (!line.includes("msg=request ")) continue;
        const m = / method=(\S+) path=(\S+) status=(\d+)/.exec(line);
        if (m) reqs.push({ method: m[1], path: m[2], status: Number(m[3]) });
      }
      return reqs;
    },
    stop,
  };
}

/** Requests logged after the first `since` ones, as "METHOD /path -> status" lines. */
export function requestLines(server, since = 0) {
  return server.requests().slice(since)
    .map((r) => `${r.method} ${r.path} -> ${r.status}`);
}
