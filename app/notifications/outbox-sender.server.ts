/**
 * The outbox sender (issue 18, ADR 0035): delivers due e-mails by SMTP (nodemailer, SMTP_URL). Each message is
 * claimed by one conditional UPDATE (sent_at IS NULL, not failed, next attempt due), which also pushes its next
 * attempt a lease ahead, so two portal processes never send one message twice; a failure is written in words with
 * the next attempt on an exponential back-off; after MAX_ATTEMPTS the message is marked failed (shown on the outbox
 * page, sent again on request). A message is never deleted. SMS messages stay queued: no SMS gateway is configured.
 */
import { and, asc, desc, eq, isNotNull, isNull, lte, sql, type SQL } from "drizzle-orm";
import nodemailer from "nodemailer";
import type { Db } from "../../db/client.ts";
import { outbox } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { Principal } from "../platform/permissions.server.ts";

/** Attempts before a message is marked failed. */
export const MAX_ATTEMPTS = 6;
/** The first retry waits this long; each further one twice as long, at most BACKOFF_MAX_MS. */
export const BACKOFF_BASE_MS = 60_000;
export const BACKOFF_MAX_MS = 3_600_000;
/** A claimed message is not claimed again for this long (a process that dies mid-send: retried after it). */
const LEASE_MS = 10 * 60_000;
/** How often the portal's loop looks for due messages. */
export const SEND_INTERVAL_MS = 5_000;
/** What one pass sends at most. */
const PASS_LIMIT = 200;

export const NO_SMS_GATEWAY = "not sent: no SMS gateway configured";

export interface Mail {
  from: string;
  to: string;
  subject: string;
  text: string;
}

/** What delivers one message: nodemailer's SMTP transport in the portal; tests may pass another. */
export interface MailTransport {
  send(mail: Mail): Promise<void>;
  close(): void;
}

export interface SenderOptions {
  transport?: MailTransport;
  maxAttempts?: number;
  /** The wait before attempt n+1 after n failed attempts (default: BACKOFF_BASE_MS * 2^(n-1), capped). */
  backoffMs?: (attempts: number) => number;
}

export interface PassResult {
  sent: number;
  retrying: number;
  failed: number;
}

export function defaultBackoffMs(attempts: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempts - 1));
}

/** The sender address: SMTP_FROM, else no-reply at the portal's host name. */
export function senderAddress(ctx: AppContext): string {
  return ctx.env.smtpFrom ?? `TrialSeal <no-reply@${new URL(ctx.env.publicUrl).hostname}>`;
}

/** nodemailer's SMTP transport for SMTP_URL (null without it: development sends nothing). */
export function smtpTransport(ctx: AppContext): MailTransport | null {
  const url = ctx.env.smtpUrl;
  if (!url) return null;
  const t = nodemailer.createTransport({
    url,
    connectionTimeout: 30_000,
    greetingTimeout: 30_000,
    socketTimeout: 60_000,
  });
  return {
    async send(m) {
      await t.sendMail({ from: m.from, to: m.to, subject: m.subject, text: m.text });
    },
    close: () => t.close(),
  };
}

/** A delivery failure in words, without credentials. */
export function describeSendError(err: unknown): string {
  const e = err as { code?: string; responseCode?: number; response?: string; message?: string };
  const strip = (s: string) => s.replace(/\/\/[^@\s/]*@/g, "//").slice(0, 300);
  if (e.responseCode) return strip(`the mail server refused the message: ${e.response ?? e.responseCode}`);
  if (e.code === "ECONNECTION" || /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ECONNRESET/.test(e.message ?? ""))
    return strip(`could not reach the mail server (${e.message ?? e.code})`);
  if (e.code === "ETIMEDOUT") return "the mail server did not answer in time";
  return strip(`sending failed: ${e.message ?? String(err)}`);
}

/**
 * Claim one due message for this process: attempts + 1 and the next attempt a lease ahead, only if nobody sent,
 * failed or claimed it meanwhile. One statement: on PostgreSQL a concurrent claim waits for the row lock and then
 * finds the condition false.
 */
async function claim(db: Db, id: string) {
  const [row] = await db
    .update(outbox)
    .set({
      attempts: sql`${outbox.attempts} + 1`,
      nextAttemptAt: sql`now() + make_interval(secs => ${LEASE_MS / 1000})`,
    })
    .where(
      and(
        eq(outbox.id, id),
        isNull(outbox.sentAt),
        isNull(outbox.failedAt),
        eq(outbox.channel, "email"),
        lte(outbox.nextAttemptAt, sql`now()`),
      ),
    )
    .returning();
  return row;
}

/** One pass: every due e-mail, claimed and sent one by one. Without a transport, nothing is sent. */
export async function sendDueOnce(ctx: AppContext, opts: SenderOptions = {}): Promise<PassResult> {
  const result: PassResult = { sent: 0, retrying: 0, failed: 0 };
  const transport = opts.transport ?? smtpTransport(ctx);
  if (!transport) return result;
  const maxAttempts = opts.maxAttempts ?? MAX_ATTEMPTS;
  const backoff = opts.backoffMs ?? defaultBackoffMs;
  const from = senderAddress(ctx);
  try {
    const due = await ctx.db
      .select({ id: outbox.id })
      .from(outbox)
      .where(
        and(
          isNull(outbox.sentAt),
          isNull(outbox.failedAt),
          eq(outbox.channel, "email"),
          lte(outbox.nextAttemptAt, sql`now()`),
        ),
      )
      .orderBy(asc(outbox.createdAt))
      .limit(PASS_LIMIT);
    for (const { id } of due) {
      const m = await claim(ctx.db, id);
      if (!m) continue; // another process has it
      try {
        await transport.send({ from, to: m.toAddress, subject: m.subject, text: m.body });
        await ctx.db.update(outbox).set({ sentAt: sql`now()`, lastError: null }).where(eq(outbox.id, id));
        result.sent++;
      } catch (err) {
        const lastError = describeSendError(err);
        if (m.attempts >= maxAttempts) {
          await ctx.db.update(outbox).set({ lastError, failedAt: sql`now()` }).where(eq(outbox.id, id));
          result.failed++;
        } else {
          const wait = backoff(m.attempts);
          await ctx.db
            .update(outbox)
            .set({ lastError, nextAttemptAt: sql`now() + make_interval(secs => ${wait / 1000})` })
            .where(eq(outbox.id, id));
          result.retrying++;
        }
      }
    }
  } finally {
    if (!opts.transport) transport.close();
  }
  return result;
}

/**
 * The portal's background loop: a pass every SEND_INTERVAL_MS while SMTP_URL is set (none without it).
 * Returns a stop function that waits for a pass in progress.
 */
export function startOutboxSender(
  ctx: AppContext,
  opts: SenderOptions & { intervalMs?: number; onError?: (err: unknown) => void } = {},
): () => Promise<void> {
  if (!ctx.env.smtpUrl && !opts.transport) return async () => {};
  const onError = opts.onError ?? ((e: unknown) => console.error(`outbox sender: ${(e as Error).message}`));
  const interval = opts.intervalMs ?? SEND_INTERVAL_MS;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> = Promise.resolve();
  const tick = () => {
    if (stopped) return;
    running = sendDueOnce(ctx, opts)
      .catch(onError)
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, interval);
      });
  };
  timer = setTimeout(tick, Math.min(interval, 500));
  return async () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    await running;
  };
}

export type OutboxState = "queued" | "sent" | "retrying" | "failed" | "not_sent_sms";

export interface OutboxMessage {
  id: string;
  channel: "email" | "sms";
  to: string;
  kind: string;
  subject: string;
  body: string | null;
  createdAt: string;
  sentAt: string | null;
  attempts: number;
  lastError: string | null;
  nextAttemptAt: string | null;
  failedAt: string | null;
  state: OutboxState;
}

const STATE_WHERE: Record<OutboxState, SQL | undefined> = {
  sent: isNotNull(outbox.sentAt),
  failed: and(isNull(outbox.sentAt), isNotNull(outbox.failedAt)),
  retrying: and(isNull(outbox.sentAt), isNull(outbox.failedAt), eq(outbox.channel, "email"), sql`attempts > 0`),
  queued: and(isNull(outbox.sentAt), isNull(outbox.failedAt), eq(outbox.channel, "email"), sql`attempts = 0`),
  not_sent_sms: and(isNull(outbox.sentAt), eq(outbox.channel, "sms")),
};

function stateOf(r: typeof outbox.$inferSelect): OutboxState {
  if (r.sentAt) return "sent";
  if (r.failedAt) return "failed";
  if (r.channel === "sms") return "not_sent_sms";
  return r.attempts > 0 ? "retrying" : "queued";
}

/** Only platform administrators see the outbox. */
function requireAdmin(principal: Principal) {
  if (!principal.platformAdmin || principal.kind !== "user")
    throw new ServiceError("forbidden", "not permitted: the outbox is for platform administrators");
}

/**
 * The outbox page: the newest messages (optionally of one state) and the count per state. Bodies are shown only
 * while nothing is sent (no SMTP_URL: the development mailbox); in production they hold sign-in links and codes
 * meant for their recipient alone.
 */
export async function listOutbox(
  ctx: AppContext,
  principal: Principal,
  opts: { state?: OutboxState; limit?: number } = {},
) {
  requireAdmin(principal);
  const rows = await ctx.db
    .select()
    .from(outbox)
    .where(opts.state ? STATE_WHERE[opts.state] : undefined)
    .orderBy(desc(outbox.createdAt))
    .limit(opts.limit ?? 200);
  const counts = Object.fromEntries(
    await Promise.all(
      (Object.keys(STATE_WHERE) as OutboxState[]).map(async (s) => {
        const [c] = await ctx.db.select({ n: sql<number>`count(*)::int` }).from(outbox).where(STATE_WHERE[s]);
        return [s, Number(c.n)] as const;
      }),
    ),
  ) as Record<OutboxState, number>;
  const showBodies = !ctx.env.smtpUrl;
  const messages: OutboxMessage[] = rows.map((r) => ({
    id: r.id,
    channel: r.channel,
    to: r.toAddress,
    kind: r.kind,
    subject: r.subject,
    body: showBodies ? r.body : null,
    createdAt: r.createdAt.toISOString(),
    sentAt: r.sentAt?.toISOString() ?? null,
    attempts: r.attempts,
    lastError: r.channel === "sms" && !r.sentAt ? NO_SMS_GATEWAY : r.lastError,
    nextAttemptAt: stateOf(r) === "retrying" || stateOf(r) === "queued" ? r.nextAttemptAt.toISOString() : null,
    failedAt: r.failedAt?.toISOString() ?? null,
    state: stateOf(r),
  }));
  return { smtpConfigured: !!ctx.env.smtpUrl, messages, counts };
}

/**
 * "Send again": a failed message (or one still retrying) becomes due now with a fresh set of attempts; its last
 * error stays until the next attempt. Audited with who asked.
 */
export async function sendAgain(ctx: AppContext, principal: Principal, id: string) {
  requireAdmin(principal);
  if (!/^[0-9a-f-]{36}$/.test(id)) throw new ServiceError("not_found", `no message ${id}`, "message");
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .update(outbox)
      .set({ failedAt: null, attempts: 0, nextAttemptAt: sql`now()` })
      .where(and(eq(outbox.id, id), isNull(outbox.sentAt), eq(outbox.channel, "email")))
      .returning({ id: outbox.id, kind: outbox.kind, studyId: outbox.studyId });
    if (!row) {
      const [m] = await tx.select().from(outbox).where(eq(outbox.id, id));
      if (!m) throw new ServiceError("not_found", `no message ${id}`, "message");
      throw new ServiceError("conflict", m.sentAt ? "message: already sent" : `message: ${NO_SMS_GATEWAY}`, "message");
    }
    await audit(tx, {
      action: "outbox.send_again",
      actorUserId: principal.userId,
      actorLabel: principal.label,
      studyId: row.studyId,
      detail: { message: row.id, kind: row.kind },
    });
    return row;
  });
}
