/**
 * trialseal CLI. Thin: it parses arguments and runs the same command functions as the portal
 * (app/platform/commands.server.ts), locally or through the running portal's control socket.
 * Exit codes: 0 success, 1 the command failed (one line on stderr), 2 bad usage or configuration.
 * Each command imports what it uses when it runs (startup loads commander alone): offline commands never load
 * the configuration or a database driver; only the commands that need the database open it.
 * `npm run build` (and `npm install`) bundle this file into build/cli/ (bin/build-cli.mjs); bin/trialseal.js
 * runs that bundle while it is up to date, else these sources through tsx.
 */
import { Command, CommanderError } from "commander";
import type { CommandOutput } from "../app/platform/commands.server.ts";

function fail(message: string, code: number): never {
  process.stderr.write(`trialseal: ${message}\n`);
  process.exit(code);
}

/**
 * Exit once everything written to stdout has been handed to the OS. On a pipe, stdout is asynchronous and a
 * bare process.exit cuts output larger than the pipe buffer (64 KiB): a proof bundle or a page would be truncated.
 */
function exitWhenFlushed(code: number): Promise<never> {
  return new Promise<never>(() => process.stdout.write("", () => process.exit(code)));
}

/** A one-line progress bar on stderr while a long command runs (only on a terminal, or with TRIALSEAL_PROGRESS=1). */
function progressBar(force: boolean): ((p: { phase: string; done: number; total: number }) => void) | undefined {
  if (!process.stderr.isTTY && !force) return undefined;
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (now - last < 100 && p.done < p.total) return;
    last = now;
    const width = 30;
    const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
    const bar = "#".repeat(Math.round(frac * width)).padEnd(width, ".");
    process.stderr.write(`\r${p.phase.padEnd(7)} [${bar}] ${p.done}/${p.total}${p.done >= p.total ? "\n" : ""}`);
  };
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) fail("--password-stdin expects the password on standard input", 2);
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}

/** Run a command locally, or through the portal when it holds the embedded database. */
async function dispatch(command: string, input: unknown): Promise<never> {
  const { loadCliEnv, openCliContext } = await import("./cli-context.ts");
  const env = await loadCliEnv({ mayCreateKeys: command === "db.migrate" });
  let out: CommandOutput;
  const { readPgliteLock } = await import("../db/pglite-lock.ts");
  const holder = env.databaseUrl ? null : readPgliteLock(env.pgliteDir);
  if (holder && typeof holder.controlSocket === "string") {
    const { sendCommand } = await import("../app/platform/control.server.ts");
    try {
      out = await sendCommand(holder.controlSocket, command, input);
    } catch (err) {
      fail(
        `the portal (process ${holder.pid}) holds the embedded database but did not answer: ${(err as Error).message}`,
        1,
      );
    }
  } else {
    const { runCommand } = await import("../app/platform/commands.server.ts");
    const ctx = await openCliContext(env);
    if ("exitCode" in ctx) fail(ctx.message, ctx.exitCode);
    try {
      out = await runCommand(ctx, command, input, { progress: progressBar(env.cliProgress) });
    } finally {
      await ctx.database.close();
    }
  }
  if (out.stdout) process.stdout.write(out.stdout);
  if (out.stderr) process.stderr.write(out.stderr);
  return exitWhenFlushed(out.exitCode ?? 0);
}

const program = new Command()
  .name("trialseal")
  .description("TrialSeal: sealed, verifiable clinical-trial data. Honours DATABASE_URL like the portal.")
  .version("0.1.0")
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

const db = program.command("db").description("database maintenance");
db.command("migrate")
  .description("apply the committed migrations")
  .action(() => dispatch("db.migrate", {}));

program
  .command("outbox")
  .description("notifications (ADR 0035)")
  .command("send")
  .description("send the due outbox e-mails once by SMTP_URL (exit 1 when some could not be sent: retried later)")
  .action(() => dispatch("outbox.send", {}));

const studies = program.command("studies").description("studies and sites");
studies
  .command("create")
  .description("create a study with one or more sites")
  .requiredOption("--code <CODE>", "protocol code, e.g. ABC-123")
  .requiredOption("--title <TITLE>", "study title")
  .requiredOption(
    "--site <SITE>",
    "site code, or CODE=Name (repeat for more sites)",
    (v: string, acc: string[]) => [...acc, v],
    [] as string[],
  )
  .action((o: { code: string; title: string; site: string[] }) =>
    dispatch("studies.create", { code: o.code, title: o.title, sites: o.site }),
  );

studies
  .command("set")
  .description("change a study's settings (each change is a sealed study.settings_changed entry)")
  .requiredOption("--study <CODE>", "protocol code")
  .option(
    "--forms-before-consent <CODES>",
    'CRF forms that may be saved before a participant\'s consent is complete (CODE[,CODE]; "" for none)',
  )
  .action((o: { study: string; formsBeforeConsent?: string }) =>
    dispatch("studies.set", { study: o.study, formsBeforeConsent: o.formsBeforeConsent }),
  );

studies
  .command("targets")
  .description("set a study's enrolment targets (a sealed study.settings_changed entry; forms before consent stay)")
  .requiredOption("--study <CODE>", "protocol code")
  .option("--total <N>", "the study's enrolment target (omit for none)")
  .option(
    "--site <CODE=N>",
    "a site's enrolment target (repeat for more sites)",
    (v: string, acc: string[]) => [...acc, v],
    [] as string[],
  )
  .action((o: { study: string; total?: string; site: string[] }) =>
    dispatch("studies.targets", { study: o.study, total: o.total, sites: o.site }),
  );

const lots = program.command("lots").description("lots of investigational product (issue 21)");
lots
  .command("affected")
  .description("print the subject codes of the participants who received a kit of a lot, one a line (sorted)")
  .requiredOption("--study <CODE>", "study")
  .requiredOption("--lot <LOT>", "lot number")
  .action((o: { study: string; lot: string }) => dispatch("lots.affected", { study: o.study, lot: o.lot }));
lots
  .command("list")
  .description("list a study's lots: expiry, released or recalled, kit counts (never kit types)")
  .requiredOption("--study <CODE>", "study")
  .action((o: { study: string }) => dispatch("lots.list", { study: o.study }));

const users = program.command("users").description("user accounts");
users
  .command("create")
  .description("create a user (role admin without --study makes a platform administrator)")
  .requiredOption("--email <EMAIL>", "sign-in email")
  .requiredOption(
    "--role <ROLE>",
    "admin | investigator | coordinator | monitor | data_manager | regulator | participant",
  )
  .option("--study <CODE>", "study the role applies to")
  .option("--site <SITE>", "site (investigators and coordinators)")
  .option("--name <NAME>", "full name")
  .option("--password-stdin", "read the password from standard input (required)")
  .action(
    async (o: {
      email: string;
      role: string;
      study?: string;
      site?: string;
      name?: string;
      passwordStdin?: boolean;
    }) => {
      if (!o.passwordStdin) fail("give the password on standard input with --password-stdin", 2);
      const password = await readStdin();
      return dispatch("users.create", {
        email: o.email,
        role: o.role,
        study: o.study,
        site: o.site,
        name: o.name,
        password,
      });
    },
  );

users
  .command("unlock")
  .description("unlock an account locked after too many wrong verification codes (a password reset also does)")
  .requiredOption("--email <EMAIL>", "the account's email")
  .action((o: { email: string }) => dispatch("users.unlock", { email: o.email }));

const tokens = program.command("tokens").description("study-scoped API tokens");
tokens
  .command("create")
  .description("create an API token; prints the token alone on stdout, once")
  .requiredOption("--study <CODE>", "study the token may act in")
  .requiredOption("--name <NAME>", "what the token is for")
  .option(
    "--scope <ACTION>",
    "an extra action beyond the integration roles, e.g. forms.manage (repeat for more)",
    (v: string, acc: string[]) => [...acc, v],
    [] as string[],
  )
  .action((o: { study: string; name: string; scope: string[] }) =>
    dispatch("tokens.create", { study: o.study, name: o.name, scopes: o.scope }),
  );
tokens
  .command("list")
  .description("list a study's API tokens (id, prefix, live or revoked, last use); never the tokens themselves")
  .requiredOption("--study <CODE>", "study")
  .action((o: { study: string }) => dispatch("tokens.list", { study: o.study }));
tokens
  .command("revoke")
  .description("revoke an API token at once (by id or by the prefix `tokens list` shows)")
  .requiredOption("--study <CODE>", "study")
  .argument("<TOKEN>", "token id or prefix (ts_...)")
  .action((token: string, o: { study: string }) => dispatch("tokens.revoke", { study: o.study, token }));

const schedule = program.command("schedule").description("a study's visit schedule (visits, windows, forms)");
schedule
  .command("set")
  .description("set the visit schedule from its JSON definition (a new sealed version); exit 1 on a bad definition")
  .requiredOption("--study <CODE>", "study")
  .argument("<file>", "the schedule definition (JSON)")
  .action(async (file: string, o: { study: string }) => {
    const { readFileSync } = await import("node:fs");
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      fail(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1);
    }
    return dispatch("schedule.set", { study: o.study, text });
  });
schedule
  .command("show")
  .description("print the visit schedule in force as a table")
  .requiredOption("--study <CODE>", "study")
  .action((o: { study: string }) => dispatch("schedule.show", { study: o.study }));

const forms = program
  .command("forms")
  .description("CRF form definitions (versioned JSON; REDCap data dictionaries and CDISC ODM in and out)");
forms
  .command("import")
  .description(
    "import a file of forms, all or none: TrialSeal JSON, a REDCap data dictionary (CSV) or CDISC ODM 1.3.2 " +
      "(XML); approved at once (a ledger entry) unless --draft. Exit 0 imported, 1 refused (every problem listed), " +
      "2 unusable file",
  )
  .requiredOption("--study <CODE>", "study")
  .option("--format <FORMAT>", "json | redcap | odm (detected when omitted)")
  .option("--draft", "import without approving")
  .option(
    "--repeating <FORM>",
    "import this form as repeating (a REDCap instrument name or a form code; repeat for more)",
    (v: string, acc: string[]) => [...acc, v],
    [] as string[],
  )
  .option("--visits <V1,V2>", "the visits of every imported form (REDCap dictionaries: SCREENING when omitted)")
  .argument("<file>", "the file")
  .action(
    async (
      file: string,
      o: { study: string; format?: string; draft?: boolean; repeating: string[]; visits?: string },
    ) => {
      const { readFileSync, statSync } = await import("node:fs");
      const { FORM_FILE_MAX_BYTES } = await import("../app/form-exchange/form-format.ts");
      let text: string;
      try {
        const size = statSync(file).size;
        if (size > FORM_FILE_MAX_BYTES)
          fail(`${file} is ${size} bytes; a file of forms may be at most ${FORM_FILE_MAX_BYTES} bytes`, 2);
        text = readFileSync(file, "utf8");
      } catch (err) {
        fail(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 2);
      }
      const formats = ["json", "redcap", "odm"];
      if (o.format !== undefined && !formats.includes(o.format))
        fail(`--format: one of ${formats.join(", ")}, not ${o.format}`, 2);
      const visits = o.visits
        ?.split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      return dispatch("forms.import", {
        study: o.study,
        text,
        fileName: file,
        format: o.format,
        draft: !!o.draft,
        repeating: o.repeating,
        visits,
      });
    },
  );
program
  .command("import")
  .description(
    "import existing data, all or nothing: a CSV file of one form (subject, visit, then one column per field) or " +
      "CDISC ODM ClinicalData (REDCap, OpenClinica). Exit 0 imported, 1 problems (each with row and column; nothing " +
      "imported), 2 unusable file",
  )
  .requiredOption("--study <CODE>", "study")
  .option("--format <FORMAT>", "csv | odm (from the file's extension when omitted)")
  .option("--form <CODE>", "the form a CSV file holds")
  .option("--map <FILE>", "JSON file mapping the file's form, visit and field names to codes")
  .option("--dry-run", "list every problem, import nothing")
  .option("--by <EMAIL>", "the account the import is made by (active, may import in the study); required")
  .argument("<file>", "the file")
  .action(
    async (
      file: string,
      o: { study: string; format?: string; form?: string; map?: string; dryRun?: boolean; by?: string },
    ) => {
      if (!o.by) fail("--by EMAIL: name the account the import is made by (a data manager of the study)", 2);
      const { readFileSync, statSync } = await import("node:fs");
      const { basename } = await import("node:path");
      const { IMPORT_MAX_BYTES, formatOfFileName } = await import("../app/data-import/read-import.ts");
      if (o.format !== undefined && o.format !== "csv" && o.format !== "odm")
        fail(`--format: csv or odm, not ${o.format}`, 2);
      const read = (f: string) => {
        try {
          return readFileSync(f);
        } catch (err) {
          fail(`cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 2);
        }
      };
      const size = statSync(file, { throwIfNoEntry: false })?.size ?? 0;
      if (size > IMPORT_MAX_BYTES)
        fail(`${file} is ${size} bytes; an import file may be at most ${IMPORT_MAX_BYTES}`, 2);
      const bytes = read(file);
      const mapText = o.map ? read(o.map).toString("utf8") : undefined;
      return dispatch("data.import", {
        study: o.study,
        fileName: basename(file),
        base64: bytes.toString("base64"),
        format: o.format ?? formatOfFileName(file),
        form: o.form,
        mapText,
        dryRun: !!o.dryRun,
        by: o.by,
      });
    },
  );
forms
  .command("export")
  .description("write the latest version of every form of a study as TrialSeal JSON, a REDCap dictionary or ODM")
  .requiredOption("--study <CODE>", "study")
  .requiredOption("--format <FORMAT>", "json | redcap | odm")
  .option("--out <FILE>", "write to this file (standard output when omitted)")
  .action((o: { study: string; format: string; out?: string }) =>
    dispatch("forms.export", { study: o.study, format: o.format, out: o.out, cwd: process.cwd() }),
  );
forms
  .command("list")
  .description("list every version of every form of a study")
  .requiredOption("--study <CODE>", "study")
  .action((o: { study: string }) => dispatch("forms.list", o));

program
  .command("seal")
  .description("seal pending ledger entries into batches and sign a checkpoint")
  .option("--once", "seal what is pending now and exit (without it: keep sealing every SEAL_INTERVAL_MS until stopped)")
  .action(async (o: { once?: boolean }) => {
    if (o.once) return dispatch("seal", {});
    const { runSealerLoop } = await import("./run-loop.ts");
    process.exit(await runSealerLoop());
  });
program
  .command("checkpoint")
  .description("print the latest signed checkpoint (C2SP signed note)")
  .action(() => dispatch("checkpoint", {}));
program
  .command("consistency")
  .description("print the RFC 9162 consistency proof between two batch-log sizes")
  .requiredOption("--from <N>", "older tree size")
  .requiredOption("--to <M>", "newer tree size")
  .action((o: { from: string; to: string }) => dispatch("consistency", o));
program
  .command("proof")
  .description("print the proof bundle of a ledger entry (by id, or seq once sealed)")
  .argument("<ref>", "entry id or seq")
  .action((ref: string) => dispatch("proof", { ref }));
program
  .command("trust-policy")
  .description("print this deployment's trust policy (publish it; verifiers pin its SHA-256)")
  .action(async () => {
    // From the configuration and the key rings alone: no database is opened.
    const { loadCliEnv, openOfflineContext } = await import("./cli-context.ts");
    const ctx = await openOfflineContext(await loadCliEnv());
    if ("exitCode" in ctx) fail(ctx.message, ctx.exitCode);
    const { deploymentTrustPolicy } = await import("../app/anchor-worker/anchor-worker.server.ts");
    process.stdout.write(`${JSON.stringify(deploymentTrustPolicy(ctx), null, 2)}\n`);
    await exitWhenFlushed(0);
  });
program
  .command("anchor")
  .description("anchor the latest checkpoint on every enabled ledger (local, evm, rfc3161)")
  .option(
    "--once",
    "one round (commit the latest checkpoint, work each ledger's queue), " +
      "print the status and exit; exit 1 when a ledger failed",
  )
  .option(
    "--ledger <NAME>",
    "only this ledger (repeat for more)",
    (v: string, acc: string[]) => [...acc, v],
    [] as string[],
  )
  .action(async (o: { once?: boolean; ledger: string[] }) => {
    if (o.once) return dispatch("anchor", { ledgers: o.ledger });
    const { runAnchorLoop } = await import("./run-loop.ts");
    process.exit(await runAnchorLoop());
  });
const keys = program
  .command("keys")
  .description("the log key and the local ledger key: init, list, rotate, revoke (key rings in DATA_DIR/keys)");
const keyTarget = (o: { log?: boolean; local?: boolean }) => {
  if (!!o.log === !!o.local) fail("say which key: --log or --local (the local ledger's key)", 2);
  return o.log ? "log" : "local";
};
keys
  .command("init")
  .description("create the deployment's keys in DATA_DIR unless they exist (npm start and db migrate do too)")
  .action(async () => {
    const { loadCliEnv } = await import("./cli-context.ts");
    const { initDeploymentKeys } = await import("../app/keys/key-init.server.ts");
    const env = await loadCliEnv({ mayCreateKeys: true });
    process.stdout.write(initDeploymentKeys(env));
    await exitWhenFlushed(0);
  });
keys
  .command("list")
  .description("every key of both rings with its validity window (current or retired)")
  .action(() => dispatch("keys.list", {}));
keys
  .command("rotate")
  .description("switch to a new key; the old one stays in the trust policy for what it signed")
  .option("--log", "the log key (checkpoints)")
  .option("--local", "the local ledger's key")
  .option("--reason <TEXT>", "why (kept in the ring)", "rotated")
  .action((o: { log?: boolean; local?: boolean; reason: string }) =>
    dispatch("keys.rotate", { target: keyTarget(o), reason: o.reason }),
  );
keys
  .command("revoke")
  .description("revoke a retired (compromised) key from a point on: verifiers refuse what it signs there or later")
  .option("--log", "a log key")
  .option("--local", "a local ledger key")
  .requiredOption("--key <HEX>", "its public key (trialseal keys list)")
  .option("--from-size <N>", "log keys: refuse its checkpoints of tree size N and above", (v: string) => {
    if (!/^\d{1,15}$/.test(v)) fail("--from-size must be a tree size (a whole number)", 2);
    return Number(v);
  })
  .option(
    "--from-time <ISO>",
    "refuse what it covers from this time on (entries for log keys, records for the local ledger)",
  )
  .requiredOption("--reason <TEXT>", "why it is revoked")
  .action((o: { log?: boolean; local?: boolean; key: string; fromSize?: number; fromTime?: string; reason: string }) =>
    dispatch("keys.revoke", {
      target: keyTarget(o),
      key: o.key,
      fromSize: o.fromSize,
      fromTime: o.fromTime,
      reason: o.reason,
    }),
  );

const ledger = program.command("ledger").description("anchoring ledgers");
ledger
  .command("status")
  .description("per ledger: last anchored checkpoint, pending count, last error")
  .option("--json", "machine-readable")
  .action((o: { json?: boolean }) => dispatch("ledger.status", { json: !!o.json }));
ledger
  .command("deploy-evm")
  .description("deploy the anchoring contract (key from EVM_PRIVATE_KEY; prints the EVM_* settings to use)")
  .option("--rpc <URL>", "JSON-RPC endpoint (default EVM_RPC_URL)")
  .option("--chain-id <ID>", "refuse to deploy unless the endpoint serves this chain")
  .action(async (o: { rpc?: string; chainId?: string }) => {
    const { runDeployEvm } = await import("./ledger-deploy.ts");
    process.exit(await runDeployEvm(o));
  });
program
  .command("verifier-html")
  .description("print the self-contained verification page (save it: verify.html); its SHA-256 goes to stderr")
  .action(async () => {
    const { existsSync, readFileSync } = await import("node:fs");
    const { createHash } = await import("node:crypto");
    const { pathToFileURL } = await import("node:url");
    const { packagePath } = await import("../app/platform/package-root.server.ts");
    // Located from the package root: in the bundled CLI, import.meta.url names build/cli/, not bin/.
    const file = packagePath("build", "verify.html");
    let html: string;
    if (existsSync(file)) html = readFileSync(file, "utf8");
    else {
      try {
        // Loaded from its own file (never bundled): it finds the sources it builds from its own location.
        const builder = pathToFileURL(packagePath("bin", "build-verifier.mjs")).href;
        const { buildVerifierHtml } = (await import(builder)) as typeof import("./build-verifier.mjs");
        html = (await buildVerifierHtml()).html;
      } catch (err) {
        fail(`cannot build the verification page (run npm run build): ${(err as Error).message}`, 1);
      }
    }
    process.stdout.write(html);
    process.stderr.write(`sha256 ${createHash("sha256").update(html).digest("hex")}\n`);
    await exitWhenFlushed(0);
  });
program
  .command("audit")
  .description("re-read the whole log and every data row and recompute them; exit 0 clean, 1 findings, 2 could not run")
  .option("--study <CODE>", "report on one study (the log structure is always checked whole)")
  .option("--json", "the report as JSON, for machines")
  .option("--from-checkpoint <N>", "take the log up to this checkpoint's size as already audited")
  .action((o: { study?: string; json?: boolean; fromCheckpoint?: string }) => {
    const from = o.fromCheckpoint === undefined ? undefined : Number(o.fromCheckpoint);
    if (from !== undefined && (!Number.isInteger(from) || from < 0))
      fail("--from-checkpoint takes a log size (a whole number)", 2);
    return dispatch("audit", { study: o.study, json: !!o.json, fromCheckpoint: from });
  });
program
  .command("export")
  .description(
    "export a study: evidence (ZIP package), odm (CDISC ODM 1.3.2 XML), fhir (FHIR R4 Bundle), " +
      "csv (ZIP of one CSV per form), allocations (after unblinding: the revealed randomization list with its proofs)",
  )
  .requiredOption("--study <CODE>", "study")
  .requiredOption("--format <FORMAT>", "evidence, odm, fhir, csv or allocations")
  .option("--out <FILE>", "where to write it (default: the export's own name in the current folder)")
  .action(async (o: { study: string; format: string; out?: string }) => {
    const path = (await import("node:path")).default;
    return dispatch("export", {
      study: o.study,
      format: o.format,
      out: o.out ? path.resolve(o.out) : undefined,
      cwd: process.cwd(),
    });
  });
program
  .command("verify-package")
  .description("check an evidence package offline (exit 0 valid, 1 invalid naming the file, 2 unreadable)")
  .argument("<file>", "the evidence package (ZIP)")
  .option("--trust <FILE>", "the trust policy to check against")
  .option("--pin <SHA256>", "accept the package's own trust-policy.json only if it has this SHA-256")
  .option("--json", "the report as JSON")
  .action(async (file: string, o: { trust?: string; pin?: string; json?: boolean }) => {
    const { runVerifyPackage } = await import("./verify-package-command.ts");
    await exitWhenFlushed(await runVerifyPackage(file, o));
  });
program
  .command("verify-allocations")
  .description("check a study's allocations file offline (exit 0 valid, 1 invalid naming the slot, 2 unreadable)")
  .argument("<file>", "the allocations file (trialseal export --format allocations)")
  .option("--trust <FILE>", "the trust policy to check against")
  .option("--pin <SHA256>", "accept the file's own trust policy only if it has this SHA-256")
  .option("--json", "the report as JSON")
  .action(async (file: string, o: { trust?: string; pin?: string; json?: boolean }) => {
    const { runVerifyAllocations } = await import("./verify-allocations-command.ts");
    await exitWhenFlushed(await runVerifyAllocations(file, o));
  });
program
  .command("verify-custody")
  .description("check a kit's chain-of-custody file offline (exit 0 valid, 1 invalid naming the entry, 2 unreadable)")
  .argument("<file>", "the kit's custody file (downloaded from the kit's page)")
  .option("--trust <FILE>", "the trust policy to check against")
  .option("--pin <SHA256>", "accept the file's own trust policy only if it has this SHA-256")
  .option("--json", "the report as JSON")
  .action(async (file: string, o: { trust?: string; pin?: string; json?: boolean }) => {
    const { runVerifyCustody } = await import("./verify-custody-command.ts");
    await exitWhenFlushed(await runVerifyCustody(file, o));
  });
program
  .command("monitor")
  .description(
    "check a deployment's log against the last checkpoint you accepted: signature, " +
      "consistency, anchors, progress (exit 0 ok, 1 alarm, 2 could not check)",
  )
  .requiredOption("--url <URL>", "the portal's address, e.g. https://trialseal.example.org")
  .requiredOption("--trust <FILE>", "the trust policy you pinned")
  .requiredOption("--state <DIR>", "where the monitor keeps the last checkpoint it accepted")
  .option("--rpc <URL>", "an EVM JSON-RPC endpoint, to check EVM anchors too")
  .option("--max-age-hours <N>", "alarm when the log has not grown for this long", "24")
  .action(async (o: { url: string; trust: string; state: string; rpc?: string; maxAgeHours?: string }) => {
    const { runMonitor } = await import("./monitor-command.ts");
    await exitWhenFlushed(await runMonitor(o));
  });
program
  .command("verify")
  .description("verify proof bundles offline against a pinned trust policy (exit 0 valid, 1 invalid, 2 unreadable)")
  .argument("<bundles...>", "proof bundle files")
  .option("--trust <FILE>", "trust policy file")
  .option("--trust-url <URL>", "fetch the trust policy from URL (requires --pin)")
  .option("--pin <SHA256>", "SHA-256 (hex) the fetched policy must have")
  .option("--json", "print the reports as JSON")
  .option(
    "--rpc <URL>",
    "JSON-RPC endpoint of the EVM chain, to check evm receipts (without it they are reported as not checked)",
  )
  .option(
    "--require <LEDGERS>",
    "comma-separated ledger types or names whose verified anchor is mandatory, e.g. evm,rfc3161",
  )
  .action(
    async (
      files: string[],
      o: { trust?: string; trustUrl?: string; pin?: string; json?: boolean; rpc?: string; require?: string },
    ) => {
      const { runVerify } = await import("./verify-command.ts");
      await exitWhenFlushed(await runVerify(files, o));
    },
  );

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  fail((err as Error).message, 1);
}
