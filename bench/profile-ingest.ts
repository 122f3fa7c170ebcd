/**
 * `npm run bench:profile`: the service-layer ingest benchmark under the V8 CPU profiler (node --cpu-prof), then a
 * summary of where the time goes (bench/profile-summary.mjs). Smaller than the full benchmark: 16 writers,
 * 2 subjects each, 50 visits (1,600 records).
 */
import { benchIngest } from "./ingest.ts";

const r = await benchIngest(process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test", {
  writers: 16,
  subjectsPerWriter: 2,
  log: console.log,
});
console.log(`${Math.round(r.servicePerSec)} records/s through saveRecord; plain INSERT ${Math.round(r.plainPerSec)}/s`);
