#!/usr/bin/env node
// Bundles the `top` dashboard (dist/ui/dashboard/run.js + ink + React + their dependencies) into one
// file, dist/ui/dashboard.bundle.js, after tsc has built dist/. Loading ink's ~100 modules one by one
// costs several hundred milliseconds; one pre-linked file loads several times faster, which is most
// of `rdmactl top`'s time to first frame. `top` falls back to the plain modules when the bundle is
// missing, so this step is an optimisation, never a requirement.
//
// Only packages and dist/ui/** are bundled. Every other relative import (commands/stat.js,
// lib/size.js, …) stays an import of the real dist file, so the program's modules are loaded once and
// shared with the rest of rdmactl, not copied.
//
// Usage: node scripts/bundle-dashboard.mjs [--check]   (--check: exit 1 if esbuild is not installed)

import { dirname, relative, resolve, sep } from 'node:path';
import { existsSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = resolve(root, 'dist');
const uiDir = resolve(dist, 'ui');
const entry = resolve(uiDir, 'dashboard', 'run.js');
const outfile = resolve(uiDir, 'dashboard.bundle.js');

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  rmSync(outfile, { force: true });
  rmSync(`${outfile}.map`, { force: true });
  const message = 'bundle-dashboard: esbuild is not installed; `rdmactl top` will load ink unbundled (slower start)';
  if (process.argv.includes('--check')) {
    console.error(message);
    process.exit(1);
  }
  console.warn(message);
  process.exit(0);
}
if (!existsSync(entry)) {
  console.error(`bundle-dashboard: ${relative(root, entry)} is missing: run tsc first`);
  process.exit(1);
}

/** Keep relative imports that leave dist/ui as imports of the real files (path relative to the bundle). */
const keepProgramModules = {
  name: 'keep-program-modules',
  setup(build) {
    build.onResolve({ filter: /^\.\.?\// }, (args) => {
      if (args.importer.includes(`${sep}node_modules${sep}`)) return undefined;
      const target = resolve(args.resolveDir, args.path);
      if (target.startsWith(uiDir + sep)) return undefined;
      let path = relative(uiDir, target).split(sep).join('/');
      if (!path.startsWith('.')) path = `./${path}`;
      return { path, external: true };
    });
  },
};

/** ink imports its React DevTools hook (and the react-devtools-core package) only when DEV=true: leave it out. */
const noDevtools = {
  name: 'no-devtools',
  setup(build) {
    build.onResolve({ filter: /^\.\/devtools\.js$/ }, (args) =>
      (args.importer.includes(`${sep}node_modules${sep}ink${sep}`) ? { path: 'ink-devtools', namespace: 'no-devtools' } : undefined));
    build.onLoad({ filter: /.*/, namespace: 'no-devtools' }, () => ({ contents: 'export {};', loader: 'js' }));
  },
};

/**
 * ink hides the cursor through cli-cursor, whose restore-cursor registers an exit hook that writes the
 * "show cursor" sequence to stderr — into a file when stderr is redirected. The dashboard restores the
 * cursor on its own terminal (stdout) on every way out, so the hook is replaced by a no-op.
 */
const noRestoreCursor = {
  name: 'no-restore-cursor',
  setup(build) {
    build.onResolve({ filter: /^restore-cursor$/ }, () => ({ path: 'restore-cursor', namespace: 'no-restore-cursor' }));
    build.onLoad({ filter: /.*/, namespace: 'no-restore-cursor' }, () => ({ contents: 'export default function restoreCursor() {}', loader: 'js' }));
  },
};

const started = performance.now();
await esbuild.build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  define: { 'process.env.NODE_ENV': '"production"' },
  // Some CommonJS dependencies call require() on Node built-ins.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  minifySyntax: true,
  minifyWhitespace: true,
  legalComments: 'linked',
  sourcemap: true,
  logLevel: 'warning',
  plugins: [noDevtools, noRestoreCursor, keepProgramModules],
});
const kib = (statSync(outfile).size / 1024).toFixed(0);
console.log(`bundle-dashboard: ${relative(root, outfile)} (${kib} KiB) in ${Math.round(performance.now() - started)} ms`);
