// Copies the page's browser libraries from node_modules (installed by `npm ci` from the
// lockfile) into the package's static folder, so the page loads nothing from outside the server.
import { copyFileSync, mkdirSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const vendor = join(here, "..", "aura_dashboard", "web", "static", "vendor");
const files = [
  ["socket.io-client/dist/socket.io.esm.min.js", "socket.io.esm.min.js"],
  ["socket.io-client/dist/socket.io.esm.min.js.map", "socket.io.esm.min.js.map"],
  ["uplot/dist/uPlot.min.css", "uPlot.min.css"],
];

mkdirSync(vendor, { recursive: true });
for (const [from, to] of files) {
  const source = join(here, "node_modules", from);
  if (!existsSync(source)) {
    console.error(`missing ${source}: run \`npm ci --prefix frontend\` first`);
    process.exit(1);
  }
  copyFileSync(source, join(vendor, to));
}
// uPlot ships no minified ES module: its minified IIFE (`var uPlot=function(){...}()`, 51 KB
// against 145 KB) becomes one by exporting that variable, so the page imports 1/3 of the bytes.
const iife = join(here, "node_modules", "uplot", "dist", "uPlot.iife.min.js");
if (!existsSync(iife)) {
  console.error(`missing ${iife}: run \`npm ci --prefix frontend\` first`);
  process.exit(1);
}
writeFileSync(join(vendor, "uPlot.esm.min.js"), `${readFileSync(iife, "utf8").trimEnd()}\nexport default uPlot;\n`);
console.log(`copied ${files.length} files and uPlot.esm.min.js into ${vendor}`);
