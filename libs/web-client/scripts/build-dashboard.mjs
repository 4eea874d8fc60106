// Bundle the dashboard (React + the web client) into the folder the edge serves.
// Output: <out>/index.html and <out>/assets/main-<hash>.{js,css}; <out> is cleaned first.
import { build } from "esbuild";
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const out = path.resolve(
  process.env.TICKWIRE_DASHBOARD_OUT ??
    path.join(root, "../../services/ws-edge/src/tickwire/edge/static/dashboard"),
);

await rm(out, { recursive: true, force: true });
await mkdir(path.join(out, "assets"), { recursive: true });
await build({
  entryPoints: [path.join(root, "dashboard/main.tsx")],
  outdir: path.join(out, "assets"),
  entryNames: "[name]-[hash]",
  bundle: true,
  format: "esm",
  minify: true,
  sourcemap: true,
  target: ["es2020"],
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
  legalComments: "linked",
  logLevel: "warning",
});
const assets = await readdir(path.join(out, "assets"));
const js = assets.find((f) => /^main-.*\.js$/.test(f));
const css = assets.find((f) => /^main-.*\.css$/.test(f));
if (!js || !css) throw new Error(`build produced ${assets.join(", ")}`);
const template = await readFile(path.join(root, "dashboard/index.html"), "utf8");
await writeFile(
  path.join(out, "index.html"),
  template.replace("%JS%", `assets/${js}`).replace("%CSS%", `assets/${css}`),
);
console.log(`dashboard built into ${path.relative(process.cwd(), out) || "."}: ${js}, ${css}`);
