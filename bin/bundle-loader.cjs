// Loads dist/rdmactl.cjs as require() would, but with V8's code cache (dist/rdmactl.cjs.cache, made
// by scripts/bundle-cli.mjs after the bundle): compiling the ~700 KiB bundle is most of rdmactl's
// start-up beyond Node's own, and the cache lets V8 skip it. The cache is used only if it was made
// from exactly these bytes (its header holds their SHA-1) and V8 accepts it (same V8 version and
// flags); otherwise the bundle is compiled as usual.
'use strict';
const { existsSync, readFileSync, writeFileSync } = require('node:fs');
const { createHash } = require('node:crypto');
const { dirname } = require('node:path');
const Module = require('node:module');
const vm = require('node:vm');

const HEADER_BYTES = 64;

function header(source) {
  return Buffer.from(`rdmactl-code-cache ${createHash('sha1').update(source).digest('hex')}`.padEnd(HEADER_BYTES));
}

/** Runs the bundle `filename`; with `cacheOut`, writes a code cache for it there when the process exits. */
function loadBundle(filename, cacheOut = null) {
  const source = readFileSync(filename, 'utf8');
  const cacheFile = `${filename}.cache`;
  let cachedData;
  if (cacheOut === null && existsSync(cacheFile)) {
    const cache = readFileSync(cacheFile);
    if (cache.subarray(0, HEADER_BYTES).equals(header(source))) cachedData = cache.subarray(HEADER_BYTES);
  }
  const script = new vm.Script(Module.wrap(source), {
    filename,
    ...(cachedData ? { cachedData } : {}),
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  if (cacheOut !== null) {
    // At exit the cache also holds the functions this run compiled lazily, not only the top level.
    process.once('exit', () => writeFileSync(cacheOut, Buffer.concat([header(source), script.createCachedData()])));
  }
  const bundle = new Module(filename, module);
  bundle.filename = filename;
  bundle.paths = Module._nodeModulePaths(dirname(filename));
  const requireFromBundle = Module.createRequire(filename);
  script.runInThisContext().call(bundle.exports, bundle.exports, requireFromBundle, bundle, filename, dirname(filename));
  bundle.loaded = true;
}

module.exports = { loadBundle };
