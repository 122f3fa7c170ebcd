/**
 * `trialseal lots affected|list` (issue 21, ADR 0063): the operator's answer to "which participants received lot X"
 * (one subject code per line, sorted) and the study's lots. Run by app/platform/commands.server.ts, locally or
 * through the portal's control socket. Exit 0; an unknown study or lot: one line on stderr, exit 2.
 */
import { z } from "zod";
import type { CommandOutput } from "../platform/commands.server.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { lotsView } from "./lots.server.ts";
import { affectedByLot } from "./recall.server.ts";

const usage = (message: string): CommandOutput => ({ stdout: "", stderr: `trialseal: ${message}\n`, exitCode: 2 });

async function run(fn: () => Promise<CommandOutput>): Promise<CommandOutput> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ServiceError && (err.code === "not_found" || err.code === "invalid")) return usage(err.message);
    throw err;
  }
}

export function lotsAffectedCommand(ctx: AppContext, input: unknown): Promise<CommandOutput> {
  return run(async () => {
    const v = z.object({ study: z.string().trim().min(1), lot: z.string().trim().min(1) }).safeParse(input);
    if (!v.success) return usage("lots affected: give --study CODE and --lot LOT");
    const rows = await affectedByLot(ctx, null, v.data.study, v.data.lot);
    const subjects = [...new Set(rows.map((r) => r.subject))].sort();
    return { stdout: subjects.map((s) => `${s}\n`).join("") };
  });
}

export function lotsListCommand(ctx: AppContext, input: unknown): Promise<CommandOutput> {
  return run(async () => {
    const v = z.object({ study: z.string().trim().min(1) }).safeParse(input);
    if (!v.success) return usage("lots list: give --study CODE");
    const { study, lots } = await lotsView(ctx, null, v.data.study);
    if (lots.length === 0) return { stdout: "", stderr: `no lots in study ${study.code}\n` };
    const head = "lot\texpires\tstatus\tkits\tat depot\tat sites\tdispensed\tdestroyed\n";
    const status = (l: (typeof lots)[number]) =>
      l.recalled ? `recalled ${l.recalled.on}` : l.released ? `released ${l.released.on}` : "not released";
    const lines = lots.map((l) =>
      [
        l.lotNumber,
        l.expiresOn,
        status(l),
        l.kits.total,
        l.kits.atDepot,
        l.kits.atSites,
        l.kits.dispensed,
        l.kits.destroyed,
      ].join("\t"),
    );
    return { stdout: `${head}${lines.join("\n")}\n` };
  });
}
