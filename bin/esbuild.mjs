// esbuild as tsx ships it. tsx is a runtime dependency, so the CLI and verifier builds also work after
// `npm ci --omit=dev`; the top-level esbuild is @remix-run/dev's older copy, a dev dependency.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const fromTsx = createRequire(require.resolve("tsx/package.json"));

export const { build } = fromTsx("esbuild");
