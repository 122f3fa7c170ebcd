/**
 * CLI commands as plain functions of (context, input) -> output text. The `trialseal` CLI runs them in its
 * own process, or, when the portal holds the embedded database, sends them to the portal's control socket,
 * which runs the very same functions. Either way: same services, same checks.
 * Each command imports the services it uses when it runs, so that a CLI run loads only its own command's code.
 */
import { z } from "zod";
import type { AppContext } from "./context.server.ts";
import { ServiceError } from "./errors.server.ts";
import type { KeyTarget } from "../keys/key-rotation.server.ts";
import type { RingKey } from "../keys/key-ring.server.ts";
import type { AnchorEvent, ledgersStatus } from "../anchor-worker/anchor-worker.server.ts";
import type { AuditProgress } from "../integrity-audit/integrity-audit.server.ts";
import { toHex } from "../../anchoring/log/bytes.ts";

export interface CommandOutput {
  stdout: string;
  stderr?: string;
  exitCode?: number;
}

/** Local runs may show progress on the terminal; through the control socket there is none. */
export interface CommandIo {
  progress?: (p: AuditProgress | { phase: string; done: number; total: number }) => void;
}

type Handler = (ctx: AppContext, input: unknown, io: CommandIo) => Promise<CommandOutput>;

function parse<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ServiceError("invalid", `${i.path.join(".") || "input"}: ${i.message}`, String(i.path[0] ?? ""));
  }
  return r.data;
}

export const COMMANDS: Record<string, Handler> = {
  /** A study export written to a file (through the control socket too: the portal writes where the CLI asked). */
  async export(ctx, input, io) {
    const { EXPORT_FORMATS, OPERATOR, exportStudy } = await import("../exports/study-exports.server.ts");
    const v = parse(
      z.object({
        study: z.string(),
        format: z.enum(EXPORT_FORMATS, { error: `format: one of ${EXPORT_FORMATS.join(", ")}` }),
        out: z.string().optional(),
        cwd: z.string(),
      }),
      input,
    );
    const file = await exportStudy(ctx, OPERATOR, v.study, v.format, { onProgress: io.progress });
    const { writeFileSync } = await import("node:fs");
    const path = (await import("node:path")).default;
    const out = v.out ?? path.join(v.cwd, file.name);
    try {
      writeFileSync(out, file.data);
    } catch (err) {
      return {
        stdout: "",
        stderr: `trialseal: cannot write ${out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`,
        exitCode: 1,
      };
    }
    return { stdout: `wrote ${out} (${file.data.length} bytes, sha256 ${toHex(ctx.crypto.sha256(file.data))})\n` };
  },

  /** The whole-study audit: exit 0 clean, 1 findings (2 when it could not run: bad input or no database). */
  async audit(ctx, input, io) {
    const v = parse(
      z.object({
        study: z.string().optional(),
        json: z.boolean().default(false),
        fromCheckpoint: z.number().int().min(0).optional(),
      }),
      input,
    );
    const { runIntegrityAudit, formatAuditReport } = await import("../integrity-audit/integrity-audit.server.ts");
    let report: Awaited<ReturnType<typeof runIntegrityAudit>>;
    try {
      report = await runIntegrityAudit(ctx, {
        study: v.study,
        fromCheckpoint: v.fromCheckpoint,
        onProgress: io.progress,
      });
    } catch (err) {
      if (err instanceof ServiceError)
        return { stdout: "", stderr: `trialseal: audit could not run: ${err.message}\n`, exitCode: 2 };
      throw err;
    }
    return {
      stdout: v.json ? `${JSON.stringify(report, null, 2)}\n` : formatAuditReport(report),
      exitCode: report.clean ? 0 : 1,
    };
  },

  async "db.migrate"(ctx) {
    // Migrations already ran when the context opened the database.
    return { stdout: `database at ${ctx.database.where} is migrated\n` };
  },

  async "outbox.send"(ctx) {
    // One pass of the notification sender (ADR 0035): what the portal's loop does every few seconds.
    const { sendDueOnce } = await import("../notifications/outbox-sender.server.ts");
    if (!ctx.env.smtpUrl)
      return { stdout: "", stderr: "trialseal: SMTP_URL is not set: nothing was sent\n", exitCode: 1 };
    const r = await sendDueOnce(ctx);
    const line = `sent ${r.sent}, retrying ${r.retrying}, failed ${r.failed} (the outbox page shows each message)\n`;
    return { stdout: line, exitCode: r.retrying + r.failed > 0 ? 1 : 0 };
  },

  async "studies.create"(ctx, input) {
    const v = parse(
      z.object({ code: z.string(), title: z.string(), sites: z.array(z.string()).min(1, "give at least one --site") }),
      input,
    );
    const sites = v.sites.map((s) => {
      const [code, ...rest] = s.split("=");
      return { code: code.trim(), name: rest.join("=").trim() || code.trim() };
    });
    const { createStudy } = await import("../studies/studies.server.ts");
    const { study, sites: created } = await createStudy(ctx, { code: v.code, title: v.title, sites }, null);
    return {
      stdout:
        `created study ${study.code} with site${created.length > 1 ? "s" : ""} ` +
        `${created.map((s) => s.code).join(", ")}\n`,
    };
  },

  async "studies.set"(ctx, input) {
    const v = parse(z.object({ study: z.string(), formsBeforeConsent: z.string().optional() }), input);
    if (v.formsBeforeConsent === undefined)
      throw new ServiceError("invalid", "give a setting to change, e.g. --forms-before-consent CODE[,CODE]", "");
    const { setFormsBeforeConsent } = await import("../studies/settings.server.ts");
    const { OPERATOR } = await import("../exports/study-exports.server.ts");
    const s = await setFormsBeforeConsent(ctx, { ...OPERATOR, label: "trialseal studies set (operator)" }, v.study, {
      formsBeforeConsent: v.formsBeforeConsent,
    });
    return {
      stdout:
        `${v.study.toUpperCase()} settings v${s.version}: forms before consent: ` +
        `${s.formsBeforeConsent.length ? s.formsBeforeConsent.join(", ") : "none"} (entry ${s.entryId})\n`,
    };
  },

  async "studies.targets"(ctx, input) {
    const v = parse(
      z.object({ study: z.string(), total: z.string().optional(), sites: z.array(z.string()).default([]) }),
      input,
    );
    const sites: Record<string, string> = {};
    for (const s of v.sites) {
      const m = /^([^=]+)=(.*)$/.exec(s);
      if (!m) throw new ServiceError("invalid", `--site ${s}: give CODE=N (e.g. --site S01=20)`, "site");
      sites[m[1].trim()] = m[2].trim();
    }
    const { setEnrolmentTargets } = await import("../studies/settings.server.ts");
    const { OPERATOR } = await import("../exports/study-exports.server.ts");
    const s = await setEnrolmentTargets(ctx, { ...OPERATOR, label: "trialseal studies targets (operator)" }, v.study, {
      total: v.total ?? "",
      sites,
    });
    const t = s.enrolmentTargets;
    const per = t ? Object.entries(t.sites).map(([c, n]) => `${c} ${n}`) : [];
    return {
      stdout:
        `${v.study.toUpperCase()} settings v${s.version}: enrolment target ${t?.total ?? "none"}` +
        `${per.length ? `; sites: ${per.join(", ")}` : ""} (entry ${s.entryId})\n`,
    };
  },

  async "users.create"(ctx, input) {
    const v = parse(
      z.object({
        email: z.string(),
        role: z.string(),
        study: z.string().optional(),
        site: z.string().optional(),
        name: z.string().optional(),
        password: z.string(),
      }),
      input,
    );
    const { createUser } = await import("../accounts/users.server.ts");
    const user = await createUser(
      ctx,
      {
        email: v.email,
        fullName: v.name ?? v.email.split("@")[0],
        password: v.password,
        role: v.role as never,
        study: v.study,
        site: v.site,
      },
      null,
    );
    return {
      stdout:
        `created user ${user.email} ` +
        `(${v.role}${v.study ? ` in ${v.study}` : ", platform"}${v.site ? ` at ${v.site}` : ""})\n`,
    };
  },

  /** Lift the lock set after too many wrong second-factor codes (ADR 0022), and the failure counters. */
  async "users.unlock"(ctx, input) {
    const v = parse(z.object({ email: z.string().trim().min(1, "give the account's email") }), input);
    const { unlockAccount } = await import("../accounts/account-lock.server.ts");
    const r = await unlockAccount(ctx, v.email, null);
    return { stdout: r.wasLocked ? `unlocked ${r.email}\n` : `${r.email} was not locked; failure counts cleared\n` };
  },

  async "tokens.create"(ctx, input) {
    const v = parse(z.object({ study: z.string(), name: z.string(), scopes: z.array(z.string()).default([]) }), input);
    const { createApiToken } = await import("../accounts/tokens.server.ts");
    const t = await createApiToken(ctx, v, null);
    return {
      stdout: `${t.token}\n`,
      stderr: `token ${t.id} for study ${t.study}: store it now, it is not shown again\n`,
    };
  },

  async "tokens.list"(ctx, input) {
    const v = parse(z.object({ study: z.string() }), input);
    const { listTokens } = await import("../accounts/tokens.server.ts");
    const { study, tokens } = await listTokens(ctx, v.study);
    const day = (d: Date | null) => (d ? d.toISOString().slice(0, 16).replace("T", " ") : "-");
    const lines = tokens.map(
      (t) =>
        `${t.id}  ${t.prefix.padEnd(10)}  ${t.revokedAt ? `revoked ${day(t.revokedAt)}` : "live"}  ` +
        `created ${day(t.createdAt)}  last used ${day(t.lastUsedAt)}  ` +
        `${t.name}${t.scopes.length ? `  [${t.scopes.join(", ")}]` : ""}`,
    );
    return {
      stdout: lines.length ? `${lines.join("\n")}\n` : "",
      stderr: lines.length ? "" : `no API tokens in study ${study}\n`,
    };
  },

  async "keys.list"(ctx) {
    const { listKeys } = await import("../keys/key-rotation.server.ts");
    const rings = listKeys(ctx);
    const window = (k: RingKey, log: boolean) =>
      [
        log ? `sizes [${k.fromSize}, ${k.untilSize ?? "∞"})` : null,
        `times [${k.notBefore ?? "-∞"}, ${k.notAfter ?? "∞"})`,
      ]
        .filter(Boolean)
        .join(", ");
    const lines: string[] = [];
    for (const [target, keys] of Object.entries(rings) as [KeyTarget, RingKey[]][]) {
      lines.push(`${target === "log" ? "log key ring" : "local ledger key ring"}:`);
      for (const k of keys)
        lines.push(
          `  ${k.publicKey}  ${k.untilSize === null && k.notAfter === null ? "current" : "retired"}  ` +
            `${window(k, target === "log")}${k.note ? `  (${k.note})` : ""}`,
        );
    }
    return { stdout: `${lines.join("\n")}\n` };
  },

  async "keys.rotate"(ctx, input) {
    const v = parse(
      z.object({ target: z.enum(["log", "local"]), reason: z.string().max(500).default("rotated") }),
      input,
    );
    const { rotateKey } = await import("../keys/key-rotation.server.ts");
    const r = await rotateKey(ctx, v.target, v.reason);
    const where = v.target === "log" ? `tree size ${r.current.fromSize}` : r.current.notBefore;
    return {
      stdout:
        `${v.target === "log" ? "log" : "local ledger"} key rotated at ${where}: ` +
        `new key ${r.current.publicKey}, old key ${r.old.publicKey} retired\n`,
      stderr:
        "Publish the new trust policy (trialseal trust-policy > policy.json) to everyone who pins yours; " +
        "old checkpoints stay verifiable under it.\n",
    };
  },

  async "keys.revoke"(ctx, input) {
    const v = parse(
      z.object({
        target: z.enum(["log", "local"]),
        key: z.string(),
        fromSize: z.number().int().min(0).optional(),
        fromTime: z.string().optional(),
        reason: z.string().default(""),
      }),
      input,
    );
    const { revokeKey } = await import("../keys/key-rotation.server.ts");
    const k = await revokeKey(ctx, v.target, v);
    return {
      stdout:
        `revoked ${v.target === "log" ? "log" : "local ledger"} key ${k.publicKey}: ` +
        `valid only for ${v.target === "log" ? `sizes [${k.fromSize}, ${k.untilSize ?? "∞"}) and ` : ""}` +
        `times [${k.notBefore ?? "-∞"}, ${k.notAfter ?? "∞"})\n`,
      stderr:
        "Publish the new trust policy now: " +
        "verifiers holding it refuse whatever the revoked key signs outside its window.\n",
    };
  },

  async "tokens.revoke"(ctx, input) {
    const v = parse(z.object({ study: z.string(), token: z.string() }), input);
    const { revokeToken } = await import("../accounts/tokens.server.ts");
    const r = await revokeToken(ctx, v, null);
    return { stdout: `revoked ${r.id} (${r.prefix}, ${r.name}) in study ${r.study}\n` };
  },

  /** Set a study's visit schedule from its JSON definition (ADR 0032): exit 1 with one line on bad input. */
  async "schedule.set"(ctx, input) {
    const v = parse(z.object({ study: z.string(), text: z.string() }), input);
    const { setSchedule } = await import("../visit-schedule/schedule-setup.server.ts");
    const operator = {
      kind: "user" as const,
      userId: null,
      label: "trialseal schedule set (operator)",
      platformAdmin: true,
      memberships: [],
    };
    const r = await setSchedule(ctx, operator, v.study, v.text);
    return {
      stdout: `schedule version ${r.version} of ${v.study.toUpperCase()}: ${r.visits} visits, sha256 ${r.sha256}\n`,
    };
  },

  /** The schedule in force as a table (visit, planned day, window, forms, date field). */
  async "schedule.show"(ctx, input) {
    const v = parse(z.object({ study: z.string() }), input);
    const { scheduleTable } = await import("../visit-schedule/schedule-view.server.ts");
    const { getStudyOrThrow } = await import("../studies/studies.server.ts");
    const study = await getStudyOrThrow(ctx, v.study);
    const t = await scheduleTable(ctx.db, study.id);
    if (!t)
      return { stdout: "", stderr: `no visit schedule in study ${study.code}; set one with trialseal schedule set\n` };
    const lines = t.rows.map((r) => [r.visit, r.name, r.day, r.window, r.forms, r.dateField].join("\t"));
    const head = `# version ${t.version}, baseline: ${t.baseline}\nvisit\tname\tday\twindow\tforms\tdate field\n`;
    return { stdout: `${head}${lines.join("\n")}\n` };
  },

  /**
   * A file of forms (TrialSeal JSON, a REDCap data dictionary, CDISC ODM), all or none: exit 0 imported, 1 refused
   * (every problem on its own line, by row for a dictionary), 2 unusable (unknown format, not JSON or XML, too large).
   */
  async "forms.import"(ctx, input) {
    const v = parse(z.object({ study: z.string() }).passthrough(), input);
    const { FormFileError, importFormsFile } = await import("../form-exchange/form-files.server.ts");
    let r: Awaited<ReturnType<typeof importFormsFile>>;
    try {
      r = await importFormsFile(
        ctx,
        {
          kind: "user",
          userId: null,
          label: "trialseal forms import (operator)",
          platformAdmin: true,
          memberships: [],
        },
        v.study,
        input as never,
      );
    } catch (err) {
      if (!(err instanceof FormFileError)) throw err;
      if (err.unusable) {
        const hint = err.message.startsWith("cannot tell") ? " with --format json|redcap|odm" : "";
        return { stdout: "", stderr: `trialseal: ${err.message}${hint}\n`, exitCode: 2 };
      }
      const json = (input as { format?: string }).format === "json" || /^\s*[[{]/.test(String(v.text ?? ""));
      const lines = err.fileProblems.map(
        (p) => `trialseal: ${json ? `form definition: ${p.where}` : p.where}: ${p.message}\n`,
      );
      return { stdout: "", stderr: `${lines.join("")}trialseal: ${err.message}\n`, exitCode: 1 };
    }
    return {
      stdout: r.forms
        .map(
          (f) =>
            `${f.status === "approved" ? "imported and approved" : "imported as draft"} ` +
            `form ${f.code} version ${f.version} in ${r.study} ` +
            `(sha256 ${Buffer.from(f.definitionSha256).toString("hex")})\n`,
        )
        .join(""),
    };
  },
  /**
   * Import existing data (issue 18, ADR 0037): a CSV file of one form or CDISC ODM ClinicalData, all or nothing.
   * Exit 0 imported (or a clean dry run), 1 problems (each with its row and column; nothing imported), 2 unusable.
   */
  async "data.import"(ctx, input, io) {
    const v = parse(
      z.object({
        study: z.string(),
        fileName: z.string().min(1),
        base64: z.string(),
        format: z.enum(["csv", "odm"]).optional(),
        form: z.string().optional(),
        mapText: z.string().optional(),
        dryRun: z.boolean().default(false),
        by: z.string().optional(),
      }),
      input,
    );
    const { createImportJob, importReportOf, runImportJob, importJobRow, importerByEmail } = await import(
      "../data-import/import-jobs.server.ts"
    );
    const by = await importerByEmail(ctx, v.study, v.by);
    if (typeof by === "string") return { stdout: "", stderr: `trialseal: --by: ${by}\n`, exitCode: 2 };
    let job: Awaited<ReturnType<typeof createImportJob>>;
    try {
      job = await createImportJob(ctx, by, v.study, {
        fileName: v.fileName,
        bytes: new Uint8Array(Buffer.from(v.base64, "base64")),
        format: v.format ?? null,
        formCode: v.form ?? null,
        mapText: v.mapText ?? null,
        dryRun: v.dryRun,
      });
    } catch (err) {
      if (err instanceof ServiceError && err.field !== "study")
        return { stdout: "", stderr: `trialseal: ${err.message}\n`, exitCode: 2 };
      throw err;
    }
    let r = await runImportJob(ctx, job.id, {
      onProgress: (p) =>
        io.progress?.({
          phase: `${p.total ? Math.floor((p.done / p.total) * 100) : 100}% ${p.rowsPerSecond} rows/s`,
          done: p.done,
          total: p.total,
        }),
    });
    // A portal's runner took the job first: wait for its end.
    while (r.status === "queued" || r.status === "running") {
      await new Promise((res) => setTimeout(res, 250));
      r = await importJobRow(ctx, job.id);
    }
    const sha = toHex(r.fileSha256);
    if (r.status === "failed") return { stdout: "", stderr: `trialseal: ${r.error}\n`, exitCode: 2 };
    if (r.status === "problems") {
      const { problems } = importReportOf(r.problemsText);
      const lines = problems.map(
        (p) => `trialseal: row ${p.row}${p.column ? `, column ${p.column}` : ""}: ${p.message}\n`,
      );
      const more =
        r.problemCount > problems.length ? `trialseal: ... and ${r.problemCount - problems.length} more\n` : "";
      return {
        stdout: "",
        stderr:
          `${lines.join("")}${more}` +
          `trialseal: ${r.problemCount} problem(s) in ${v.fileName}; nothing was imported\n`,
        exitCode: 1,
      };
    }
    if (r.dryRun)
      return { stdout: `dry run: ${r.total} row(s) of ${v.fileName} can be imported, no problem (sha256 ${sha})\n` };
    return {
      stdout:
        `imported ${r.values} value(s) in ${r.records} record(s) from ${v.fileName} into ${v.study} ` +
        `(job ${r.id}, sha256 ${sha})\n`,
    };
  },
  /** Every form's latest version as one file: TrialSeal JSON, a REDCap data dictionary or CDISC ODM metadata. */
  async "forms.export"(ctx, input) {
    const { FORM_FILE_FORMATS } = await import("../form-exchange/form-format.ts");
    const v = parse(
      z.object({
        study: z.string(),
        format: z.enum(FORM_FILE_FORMATS, { error: `format: one of ${FORM_FILE_FORMATS.join(", ")}` }),
        out: z.string().optional(),
        cwd: z.string().optional(),
      }),
      input,
    );
    const { exportForms } = await import("../form-exchange/form-files.server.ts");
    const file = await exportForms(ctx, v.study, v.format);
    if (v.out === undefined) return { stdout: file.text };
    const { writeFileSync } = await import("node:fs");
    const path = (await import("node:path")).default;
    const out = path.resolve(v.cwd ?? process.cwd(), v.out);
    try {
      writeFileSync(out, file.text);
    } catch (err) {
      return {
        stdout: "",
        stderr: `trialseal: cannot write ${out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`,
        exitCode: 1,
      };
    }
    const bytes = new TextEncoder().encode(file.text);
    return {
      stdout:
        `wrote ${out} (${file.count} form${file.count > 1 ? "s" : ""}, ${bytes.length} bytes, ` +
        `sha256 ${toHex(ctx.crypto.sha256(bytes))})\n`,
    };
  },
  async "forms.list"(ctx, input) {
    const v = parse(z.object({ study: z.string() }), input);
    const { listStudyForms } = await import("../records/forms.server.ts");
    const rows = await listStudyForms(ctx, v.study);
    if (rows.length === 0) return { stdout: `no forms in ${v.study}\n` };
    return { stdout: rows.map((f) => `${f.code}\tv${f.version}\t${f.status}\t${f.title}\n`).join("") };
  },

  async seal(ctx) {
    const { sealAll } = await import("../log/sealer.server.ts");
    const made = await sealAll(ctx);
    if (made.length === 0) return { stdout: "nothing pending\n" };
    return {
      stdout: made
        .map(
          (b) =>
            `sealed batch ${b.batchNo}: seq ${b.firstSeq}..${b.firstSeq + b.size - 1} ` +
            `(${b.size} entries), log size ${b.treeSize}\n`,
        )
        .join(""),
    };
  },
  async checkpoint(ctx) {
    const { latestCheckpoint } = await import("../log/proofs.server.ts");
    const cp = await latestCheckpoint(ctx);
    if (!cp) throw new ServiceError("not_found", "no checkpoint yet: nothing has been sealed");
    return { stdout: cp.noteText };
  },
  async consistency(ctx, input) {
    const whole = z
      .string()
      .regex(/^\d{1,15}$/, "must be a whole number")
      .transform(Number);
    const v = parse(z.object({ from: whole, to: whole }), input);
    const { consistencyBetween } = await import("../log/proofs.server.ts");
    return { stdout: `${JSON.stringify(await consistencyBetween(ctx, v.from, v.to), null, 2)}\n` };
  },
  async proof(ctx, input) {
    const v = parse(z.object({ ref: z.string() }), input);
    const { findEntryByRef, proofBundle } = await import("../log/proofs.server.ts");
    const entry = await findEntryByRef(ctx, v.ref);
    if (!entry) throw new ServiceError("not_found", `no entry ${v.ref}`);
    const r = await proofBundle(ctx, entry);
    if (r.status === "pending")
      throw new ServiceError("conflict", `entry ${entry.id} is not sealed yet; try again after the next seal`);
    return { stdout: `${JSON.stringify(r.bundle, null, 2)}\n` };
  },
  async "trust-policy"(ctx) {
    const { deploymentTrustPolicy } = await import("../anchor-worker/anchor-worker.server.ts");
    return { stdout: `${JSON.stringify(deploymentTrustPolicy(ctx), null, 2)}\n` };
  },
  async anchor(ctx, input) {
    const v = parse(z.object({ ledgers: z.array(z.string()).default([]) }), input);
    const unknown = v.ledgers.filter((n) => !ctx.ledgers.some((l) => l.ledger.name === n));
    if (unknown.length)
      throw new ServiceError(
        "invalid",
        `no ledger named ${unknown.join(", ")} is enabled ` +
          `(enabled: ${ctx.ledgers.map((l) => l.ledger.name).join(", ") || "none"})`,
        "ledger",
      );
    if (ctx.ledgers.length === 0)
      throw new ServiceError("invalid", "no ledger is enabled (LOCAL_LEDGER=false and no EVM_RPC_URL or TSA_URL)");
    const { anchorOnce, ledgersStatus } = await import("../anchor-worker/anchor-worker.server.ts");
    const events = await anchorOnce(ctx, { ledgers: v.ledgers });
    const status = await ledgersStatus(ctx);
    const failed = events.some((e) => e.type === "retry" || e.type === "failed");
    return { stdout: events.map(describeEvent).join("") + formatStatus(status), exitCode: failed ? 1 : 0 };
  },
  /** Issue 21 (ADR 0063): who received lot X; the study's lots (app/drug-supply/lot-commands.server.ts). */
  async "lots.affected"(ctx, input) {
    return (await import("../drug-supply/lot-commands.server.ts")).lotsAffectedCommand(ctx, input);
  },
  async "lots.list"(ctx, input) {
    return (await import("../drug-supply/lot-commands.server.ts")).lotsListCommand(ctx, input);
  },
  async "ledger.status"(ctx, input) {
    const v = parse(z.object({ json: z.boolean().default(false) }), input);
    const { ledgersStatus } = await import("../anchor-worker/anchor-worker.server.ts");
    const status = await ledgersStatus(ctx);
    return { stdout: v.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status) };
  },
};

export async function runCommand(
  ctx: AppContext,
  name: string,
  input: unknown,
  io: CommandIo = {},
): Promise<CommandOutput> {
  const handler = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!handler) return { stdout: "", stderr: `trialseal: unknown command ${name}\n`, exitCode: 2 };
  try {
    return await handler(ctx, input, io);
  } catch (err) {
    if (err instanceof ServiceError) return { stdout: "", stderr: `trialseal: ${err.message}\n`, exitCode: 1 };
    throw err;
  }
}

export function describeEvent(e: AnchorEvent): string {
  switch (e.type) {
    case "committed":
      return `${e.ledger}: will anchor checkpoint ${e.treeSize}\n`;
    case "anchored":
      return `${e.ledger}: checkpoint ${e.treeSize} anchored (${e.status})\n`;
    case "reorged":
      return `${e.ledger}: checkpoint ${e.treeSize} left the canonical chain; anchoring again\n`;
    case "retry":
      return (
        `${e.ledger}: checkpoint ${e.treeSize} not anchored yet (attempt ${e.attempts}): ` +
        `${e.error}; next try ${e.nextAttemptAt.toISOString()}\n`
      );
    case "failed":
      return `${e.ledger}: checkpoint ${e.treeSize} cannot be anchored: ${e.error}\n`;
  }
}

export function formatStatus(rows: Awaited<ReturnType<typeof ledgersStatus>>): string {
  if (rows.length === 0) return "no ledger enabled\n";
  const head = ["ledger", "last anchored", "at", "pending", "included", "failed", "last error"];
  const body = rows.map((r) => [
    r.ledger,
    r.lastFinalSize === null ? "-" : `size ${r.lastFinalSize}`,
    r.lastFinalAt ? r.lastFinalAt.toISOString() : "-",
    String(r.pending),
    String(r.included),
    String(r.failed),
    r.lastError ? `${r.lastError}${r.attempts ? ` (${r.attempts} attempts)` : ""}` : "-",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const fmt = (cells: string[]) =>
    `${cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ")}\n`;
  return fmt(head) + body.map(fmt).join("");
}
