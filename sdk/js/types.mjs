// Regenerates types/ from wit/v0.2 with jco (run `npm run types` after changing the WIT).
//
// Two fixes on the way: jco 1.35's type command starts its WASI shim with no preopened
// directory (it fails with "os error 44"), so it runs with `/` preopened; and jco writes
// 64-bit integers as `bigint`, the SpiderMonkey ABI's, while componentize-qjs (QuickJS),
// which these bots are built with, passes them as `number` — exact to 2^53, which every
// Telegram id fits.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';

const here = dirname(fileURLToPath(import.meta.url));
const tools = mkdtempSync(join(tmpdir(), 'wasmcalls-jco-'));
execFileSync('npm', ['install', '--silent', '--no-audit', '--no-fund', '--prefix', tools, '@bytecodealliance/jco@1.35.0'], { stdio: 'inherit' });
const shim = join(tools, 'node_modules/@bytecodealliance/jco-transpile/node_modules/@bytecodealliance/preview2-shim/dist/nodejs/filesystem.js');
const preload = join(tools, 'preopen.mjs');
writeFileSync(preload, `import { _setPreopens } from ${JSON.stringify(shim)};\n_setPreopens({ '/': '/' });\n`);
const out = join(here, 'types');
rmSync(out, { recursive: true, force: true });
mkdirSync(out);
execFileSync('node', ['--import', preload, join(tools, 'node_modules/.bin/jco'), 'guest-types', join(here, '../../wit/v0.2'), '-n', 'bot-with-audio', '-o', out], { stdio: 'inherit' });
const walk = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]);
for (const f of walk(out)) {
  const text = readFileSync(f, 'utf8').replaceAll('bigint', 'number');
  writeFileSync(f, `// Generated from wit/v0.2 by \`npm run types\` (jco guest-types; 64-bit integers as QuickJS passes them).\n${text}`);
}
rmSync(tools, { recursive: true, force: true });
