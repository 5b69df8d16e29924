// Copies the page's browser libraries from node_modules (installed by `npm ci` from the
// lockfile) into the package's static folder, so the page loads nothing from outside the server.
import { copyFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const vendor = join(here, "..", "aura_dashboard", "web", "static", "vendor");
const files = [
  ["socket.io-client/dist/socket.io.esm.min.js", "socket.io.esm.min.js"],
  ["socket.io-client/dist/socket.io.esm.min.js.map", "socket.io.esm.min.js.map"],
  ["uplot/dist/uPlot.esm.js", "uPlot.esm.js"],
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
console.log(`copied ${files.length} files into ${vendor}`);
