/** Remix 2 classic compiler configuration. */
import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { UNSAFE_flatRoutes as flatRoutes } from "@remix-run/dev";

const APP = path.join(path.dirname(fileURLToPath(import.meta.url)), "app");
const IGNORED = ["**/.*", "**/*.test.{ts,tsx}"];

/**
 * Route files are grouped by area (app/routes/accounts/, api/, consent/, public/, studies/); inside each folder
 * Remix's own flat-route naming applies unchanged, so a file keeps its flat name and its URL
 * (app/routes/studies/studies.$code.forms.tsx serves /studies/:code/forms). The folder never enters the URL.
 * A route file directly in app/routes/ would be silently ignored, so it is an error here.
 */
export function areaRoutes() {
  const manifest = {};
  for (const entry of readdirSync(path.join(APP, "routes"), { withFileTypes: true })) {
    if (entry.name.startsWith(".")) continue;
    if (!entry.isDirectory())
      throw new Error(`app/routes/${entry.name}: put route files in an area folder (app/routes/AREA/)`);
    Object.assign(manifest, flatRoutes(APP, IGNORED, `routes/${entry.name}`));
  }
  return manifest;
}

/** @type {import('@remix-run/dev').AppConfig} */
export default {
  appDirectory: "app",
  assetsBuildDirectory: "public/build",
  publicPath: "/build/",
  serverBuildPath: "build/index.js",
  serverModuleFormat: "esm",
  serverPlatform: "node",
  // Packages that must stay outside the server bundle (native addons, WASM, their own file layout).
  serverDependenciesToBundle: [/^@noble\//, /^canonicalize$/],
  // Remix's default scan of app/routes/ finds nothing (folders are not followed); `routes` adds the areas.
  ignoredRouteFiles: ["**/*"],
  routes: async () => areaRoutes(),
  future: {
    v3_fetcherPersist: true,
    v3_relativeSplatPath: true,
    v3_throwAbortReason: true,
    v3_lazyRouteDiscovery: true,
    v3_singleFetch: true,
  },
};
