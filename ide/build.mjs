// Rebuild GraphiQL's assets into gateway/http/ide_assets/ from this folder's lockfile:
//
//   cd ide && npm ci && npm run build
//
// The result is committed: installing or running the gateway needs neither
// Node nor the network. MANIFEST.json records each file's SHA-256, and
// tests/test_ide.py checks the files against it.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'gateway', 'http', 'ide_assets');
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

const common = {
  bundle: true,
  minify: true,
  target: 'es2020',
  legalComments: 'external',
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await esbuild.build({
  ...common,
  entryPoints: { graphiql: join(here, 'src', 'main.jsx') },
  outdir: out,
  format: 'esm',
  // One file, not split: esbuild does not load the CSS of lazily imported chunks.
  jsx: 'automatic',
  loader: { '.ttf': 'file', '.woff': 'file', '.woff2': 'file' },
  assetNames: 'fonts/[name]-[hash]',
});

// Monaco runs its language services in web workers: one classic script each.
await esbuild.build({
  ...common,
  entryPoints: {
    editor: 'monaco-editor/esm/vs/editor/editor.worker.js',
    json: 'monaco-editor/esm/vs/language/json/json.worker.js',
    graphql: 'monaco-graphql/esm/graphql.worker.js',
  },
  outdir: join(out, 'workers'),
  entryNames: '[name].worker',
  format: 'iife',
});

// GraphiQL's stylesheets inline fonts and images as data: URLs; written out as
// files, the page's policy can keep fonts and images to 'self'.
const cssPath = join(out, 'graphiql.css');
const extensions = { 'svg+xml': 'svg', jpeg: 'jpg' };
const css = readFileSync(cssPath, 'utf8').replace(
  /url\(\s*["']?data:(font|image)\/([a-z0-9.+-]+);base64,([A-Za-z0-9+/=]+)["']?\s*\)/g,
  (_match, kind, subtype, data) => {
    const bytes = Buffer.from(data, 'base64');
    const folder = kind === 'font' ? 'fonts' : 'images';
    const name = `${folder}/${sha256(bytes).slice(0, 16)}.${extensions[subtype] ?? subtype}`;
    mkdirSync(join(out, folder), { recursive: true });
    writeFileSync(join(out, name), bytes);
    return `url(${name})`;
  },
);
writeFileSync(cssPath, css);

const files = [];
const walk = (folder) => {
  for (const entry of readdirSync(folder).sort()) {
    const path = join(folder, entry);
    if (statSync(path).isDirectory()) walk(path);
    else files.push(path);
  }
};
walk(out);

const lock = JSON.parse(readFileSync(join(here, 'package-lock.json'), 'utf8'));
const version = (name) => lock.packages[`node_modules/${name}`].version;
const manifest = {
  comment: 'Built by ide/build.mjs from ide/package-lock.json; tests/test_ide.py checks these digests.',
  packages: Object.fromEntries(
    ['graphiql', '@graphiql/plugin-explorer', '@graphiql/react', 'monaco-editor', 'react', 'react-dom', 'graphql'].map(
      (name) => [name, version(name)],
    ),
  ),
  sha256: Object.fromEntries(
    files.map((path) => [relative(out, path).split('\\').join('/'), sha256(readFileSync(path))]),
  ),
};
writeFileSync(join(out, 'MANIFEST.json'), `${JSON.stringify(manifest, null, 2)}\n`);
const total = files.reduce((sum, path) => sum + statSync(path).size, 0);
console.log(`${files.length} files, ${(total / 1024).toFixed(0)} KiB in ${relative(process.cwd(), out)}`);
