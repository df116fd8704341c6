// Reads `npm pack --dry-run --json` on stdin and prints the package's file
// list, one path a line; with --check FILE, fails unless it equals FILE and
// the type declarations are in it.
import { readFileSync } from 'node:fs';

const input = readFileSync(0, 'utf8');
let files;
try {
  files = JSON.parse(input)[0].files.map((f) => f.path).sort();
} catch {
  console.error(`npm pack --dry-run --json gave no file list:\n${input.slice(0, 500)}`);
  process.exit(1);
}
const text = files.join('\n') + '\n';
const i = process.argv.indexOf('--check');
if (i < 0) {
  process.stdout.write(text);
  process.exit(0);
}
const want = readFileSync(process.argv[i + 1], 'utf8');
const problems = [];
for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/events.d.ts', 'dist/types.d.ts', 'dist/generated/openapi.d.ts', 'LICENSE', 'README.md', 'package.json']) {
  if (!files.includes(f)) problems.push(`${f} is not in the package`);
}
if (files.some((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('node_modules/'))) problems.push('sources, tests or node_modules are in the package');
if (text !== want) problems.push(`the file list differs from clients/js/pack-files.txt (run 'make js-build'):\n${text}`);
if (problems.length) {
  console.error(`clients/js package: ${problems.join('\n')}`);
  process.exit(1);
}
console.log(`clients/js package: ${files.length} files, types included`);
