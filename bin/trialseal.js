#!/usr/bin/env node
// The `trialseal` CLI entry: registers tsx so the TypeScript sources run as they are, then runs bin/cli.ts.
import { register } from "tsx/esm/api";

register();
await import("./cli.ts");
