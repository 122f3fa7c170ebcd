/**
 * CLI commands as plain functions of (context, input) -> output text. The `trialseal` CLI runs them in its
 * own process, or, when the portal holds the embedded database, sends them to the portal's control socket,
 * which runs the very same functions. Either way: same services, same checks.
 */
import { z } from "zod";
import type { AppContext } from "./context.server.ts";
import { ServiceError } from "./errors.server.ts";
import { createStudy } from "./studies.server.ts";
import { createUser } from "./users.server.ts";
import { createApiToken } from "./tokens.server.ts";

export interface CommandOutput {
  stdout: string;
  stderr?: string;
  exitCode?: number;
}

type Handler = (ctx: AppContext, input: unknown) => Promise<CommandOutput>;

function parse<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ServiceError("invalid", `${i.path.join(".") || "input"}: ${i.message}`, String(i.path[0] ?? ""));
  }
  return r.data;
}

export const COMMANDS: Record<string, Handler> = {
  async "db.migrate"(ctx) {
    // Migrations already ran when the context opened the database.
    return { stdout: `database at ${ctx.database.where} is migrated\n` };
  },

  async "studies.create"(ctx, input) {
    const v = parse(z.object({ code: z.string(), title: z.string(), sites: z.array(z.string()).min(1, "give at least one --site") }), input);
    const sites = v.sites.map((s) => {
      const [code, ...rest] = s.split("=");
      return { code: code.trim(), name: rest.join("=").trim() || code.trim() };
    });
    const { study, sites: created } = await createStudy(ctx, { code: v.code, title: v.title, sites }, null);
    return { stdout: `created study ${study.code} with site${created.length > 1 ? "s" : ""} ${created.map((s) => s.code).join(", ")}\n` };
  },

  async "users.create"(ctx, input) {
    const v = parse(
      z.object({ email: z.string(), role: z.string(), study: z.string().optional(), site: z.string().optional(), name: z.string().optional(), password: z.string() }),
      input,
    );
    const user = await createUser(ctx, { email: v.email, fullName: v.name ?? v.email.split("@")[0], password: v.password, role: v.role as never, study: v.study, site: v.site }, null);
    return { stdout: `created user ${user.email} (${v.role}${v.study ? ` in ${v.study}` : ", platform"}${v.site ? ` at ${v.site}` : ""})\n` };
  },

  async "tokens.create"(ctx, input) {
    const v = parse(z.object({ study: z.string(), name: z.string() }), input);
    const t = await createApiToken(ctx, v, null);
    return { stdout: `${t.token}\n`, stderr: `token ${t.id} for study ${t.study}: store it now, it is not shown again\n` };
  },
};

export async function runCommand(ctx: AppContext, name: string, input: unknown): Promise<CommandOutput> {
  const handler = Object.prototype.hasOwnProperty.call(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!handler) return { stdout: "", stderr: `trialseal: unknown command ${name}\n`, exitCode: 2 };
  try {
    return await handler(ctx, input);
  } catch (err) {
    if (err instanceof ServiceError) return { stdout: "", stderr: `trialseal: ${err.message}\n`, exitCode: 1 };
    throw err;
  }
}
