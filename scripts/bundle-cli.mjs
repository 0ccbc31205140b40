#!/usr/bin/env node
// Bundles every command except `top` into one CommonJS file, dist/rdmactl.cjs, after tsc has built
// dist/ — and the detached holder's program (dist/held/holderMain.js, which `reg --detach` starts) into
// dist/held/holderMain.cjs, which the starter prefers when it exists.
// bin/rdmactl (CommonJS, see bin/package.json) require()s it, so a command runs without Node's
// ES module loader and without resolving ~25 files one by one: `rdmactl --version` starts as fast as
// `node -e 0` (bench/RESULTS.md has the figures). `top` keeps the ES modules of dist/ (its dashboard
// bundle imports them), and bin/rdmactl falls back to dist/main.js when this bundle is missing, so
// this step is an optimisation, never a requirement.
//
// Native and ES-only packages (koffi, ink, react) stay outside; the dashboard is never bundled here.
// Each dist file's `import.meta.url` becomes that file's own URL, computed from the bundle's location at
// run time, so paths relative to a module (../package.json, ./scanWorker.js, ../../bin/rdmactl) still
// name the same files, wherever the package is installed.
//
// Usage: node scripts/bundle-cli.mjs [--check]   (--check: exit 1 if esbuild is not installed)

import { spawnSync } from 'node:child_process';
import { dirname, relative, resolve, sep } from 'node:path';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = resolve(root, 'dist');
const outfile = resolve(dist, 'rdmactl.cjs');

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  rmSync(outfile, { force: true });
  rmSync(`${outfile}.cache`, { force: true });
  rmSync(resolve(dist, 'held', 'holderMain.cjs'), { force: true });
  const message = 'bundle-cli: esbuild is not installed; rdmactl will load dist/ module by module (slower start)';
  if (process.argv.includes('--check')) {
    console.error(message);
    process.exit(1);
  }
  console.warn(message);
  process.exit(0);
}
if (!existsSync(resolve(dist, 'cli.js'))) {
  console.error('bundle-cli: dist/cli.js is missing: run tsc first');
  process.exit(1);
}

/** `import.meta.url` of a dist file → that file's URL, derived from where the bundle lies at run time. */
const ownUrl = {
  name: 'own-url',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(dist + sep)) return undefined;
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const own = relative(dist, args.path).split(sep).join('/');
      return { contents: text.replaceAll('import.meta.url', `__rdmactlModuleUrl(${JSON.stringify(own)})`), loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

/** The dashboard (ink, React) is `top`'s, which runs from the ES modules: keep it out of the bundle. */
const noDashboard = {
  name: 'no-dashboard',
  setup(build) {
    build.onResolve({ filter: /\/ui\/dashboard(\/run)?(\.bundle)?\.js$/ }, (args) => {
      const target = relative(dist, resolve(args.resolveDir, args.path)).split(sep).join('/');
      return { path: `./${target}`, external: true };
    });
  },
};

/** Options shared by both bundles; `toDist` is the way from the bundle's directory back to dist/. */
const common = (toDist) => ({
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['koffi', 'ink', 'react'],
  banner: { js: `'use strict';\nconst __rdmactlModuleUrl = (file) => require('node:url').pathToFileURL(require('node:path').join(__dirname, ${JSON.stringify(toDist)}, file)).href;` },
  minifySyntax: true,
  minifyWhitespace: true,
  legalComments: 'linked',
  logLevel: 'warning',
  plugins: [ownUrl, noDashboard],
});

const started = performance.now();
await esbuild.build({
  stdin: {
    contents: "import { run } from './cli.js';\nrun(process.argv.slice(2)).then((code) => { process.exitCode = code; });\n",
    resolveDir: dist,
    sourcefile: 'rdmactl-entry.js',
    loader: 'js',
  },
  outfile,
  ...common('.'),
});
const holderOut = resolve(dist, 'held', 'holderMain.cjs');
await esbuild.build({ entryPoints: [resolve(dist, 'held', 'holderMain.js')], outfile: holderOut, ...common('..') });
// V8's code cache of the bundle, made by running `rdmactl --version` through the loader bin/rdmactl
// uses (bin/bundle-loader.cjs): what a start compiles is then in it. Optional, like the bundle.
const cacheFile = `${outfile}.cache`;
rmSync(cacheFile, { force: true });
const cacheRun = spawnSync(process.execPath, ['-e', `process.argv.splice(1, Infinity, ${JSON.stringify(resolve(root, 'bin', 'rdmactl'))}, '--version'); require(${JSON.stringify(resolve(root, 'bin', 'bundle-loader.cjs'))}).loadBundle(${JSON.stringify(outfile)}, ${JSON.stringify(cacheFile)});`], { stdio: ['ignore', 'ignore', 'pipe'] });
if (cacheRun.status !== 0 || !existsSync(cacheFile)) {
  rmSync(cacheFile, { force: true });
  console.warn(`bundle-cli: no code cache (${cacheRun.stderr.toString().trim() || `exit ${cacheRun.status}`}); rdmactl compiles the bundle at each start`);
}
const kib = (file) => `${(statSync(file).size / 1024).toFixed(0)} KiB`;
console.log(`bundle-cli: ${relative(root, outfile)} (${kib(outfile)}), ${relative(root, holderOut)} (${kib(holderOut)}) in ${Math.round(performance.now() - started)} ms`);
