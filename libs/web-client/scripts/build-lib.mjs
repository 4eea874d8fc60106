// Build the installable package: dist/index.js (ESM, one file, react left to the app)
// beside the declarations tsc writes (tsconfig.build.json). dist/ is cleaned first.
import { build } from "esbuild";
import { rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
await rm(path.join(root, "dist"), { recursive: true, force: true });
await build({
  entryPoints: [path.join(root, "src/index.ts")],
  outfile: path.join(root, "dist/index.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2020"],
  jsx: "automatic",
  sourcemap: true,
  external: ["react", "react/jsx-runtime", "react-dom"],
  logLevel: "warning",
});
