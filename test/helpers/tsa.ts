/**
 * A real RFC 3161 Time-Stamp Authority for tests: `openssl ts -reply` behind a small HTTP server, with a
 * test CA and a TSA certificate (critical timeStamping EKU) generated on start. Requests are served one
 * at a time (openssl rewrites its serial file without locking). `mode` lets a test make it misbehave.
 */
import { execFileSync, execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export type TsaMode = "ok" | "http500" | "garbage" | "reset" | "hang";

export interface TestTsa {
  url: string;
  dir: string;
  /** PEM of the CA the TSA certificate chains to (what TSA_CERTS points at). */
  caPem: string;
  caFile: string;
  requests: number;
  mode: TsaMode;
  close(): Promise<void>;
}

export async function startTsa(opts: { port?: number; name?: string } = {}): Promise<TestTsa> {
  const dir = mkdtempSync(path.join(tmpdir(), "trialseal-tsa-"));
  const ossl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  const name = opts.name ?? "TrialSeal Test TSA";
  ossl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "3650",
    "-subj",
    `/CN=${name} CA`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  );
  ossl(
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "tsa.key",
    "-out",
    "tsa.csr",
    "-subj",
    `/CN=${name}`,
  );
  writeFileSync(
    path.join(dir, "ext.cnf"),
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n",
  );
  ossl(
    "x509",
    "-req",
    "-in",
    "tsa.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "tsa.pem",
    "-days",
    "3650",
    "-extfile",
    "ext.cnf",
  );
  writeFileSync(path.join(dir, "serial"), "01\n");
  writeFileSync(
    path.join(dir, "tsa.cnf"),
    `[ tsa ]
default_tsa = tsa1
[ tsa1 ]
dir = ${dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
`,
  );
  const caPem = readFileSync(path.join(dir, "ca.pem"), "utf8");
  let queue: Promise<unknown> = Promise.resolve();
  let n = 0;
  const sockets = new Set<import("node:net").Socket>();
  const tsa: TestTsa = {
    url: "",
    dir,
    caPem,
    caFile: path.join(dir, "ca.pem"),
    requests: 0,
    mode: "ok",
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      tsa.requests++;
      const mode = tsa.mode;
      if (mode === "reset") return req.socket.destroy();
      if (mode === "hang") return; // never answers
      if (mode === "http500") {
        res.writeHead(500).end("internal error");
        return;
      }
      if (mode === "garbage") {
        res
          .writeHead(200, { "content-type": "application/timestamp-reply" })
          .end(Buffer.from("this is not DER at all"));
        return;
      }
      const k = ++n;
      queue = queue.then(async () => {
        const q = path.join(dir, `q${k}.der`);
        const r = path.join(dir, `r${k}.der`);
        writeFileSync(q, Buffer.concat(chunks));
        try {
          await run("openssl", [
            "ts",
            "-reply",
            "-queryfile",
            q,
            "-config",
            path.join(dir, "tsa.cnf"),
            "-section",
            "tsa1",
            "-out",
            r,
          ]);
          res.writeHead(200, { "content-type": "application/timestamp-reply" }).end(readFileSync(r));
        } catch (err) {
          res.writeHead(500).end(String((err as Error).message));
        } finally {
          rmSync(q, { force: true });
          rmSync(r, { force: true });
        }
      });
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, "127.0.0.1", resolve));
  const addr = server.address() as import("node:net").AddressInfo;
  tsa.url = `http://127.0.0.1:${addr.port}/tsa`;
  return tsa;
}
