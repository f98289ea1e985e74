// Builds the dashboard into api/dashboard/assets, which the Go binary embeds.
// Run through `go generate ./api/dashboard` (or `npm run build` here); commit the
// output so that `go build` never needs Node.
import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";

const out = new URL("../api/dashboard/assets/", import.meta.url).pathname;
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: ["src/app.js"],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  outdir: out,
  // Chart.js's licence travels with the bundle.
  legalComments: "eof",
  logLevel: "warning",
});
await copyFile("src/index.html", out + "index.html");
await copyFile("src/favicon.svg", out + "favicon.svg");
