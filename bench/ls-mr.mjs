// `rdmactl ls --json` with 10,000 verbs MRs held by one process vs `rdma -j res show mr` alone (the
// netlink listing ls reads them from), interleaved, medians. Needs a verbs device: run it in the lab,
// `npm run lab -- 'node bench/ls-mr.mjs'`; elsewhere it says it was skipped.
// Usage: node bench/ls-mr.mjs [--mrs N] [--runs R]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const BIN = `${root}bin/rdmactl`;
const TARGET = 1.5;
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const MRS = option('--mrs', 10_000);
const RUNS = option('--runs', 7);
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

function timeCommand(argv) {
  const start = performance.now();
  const r = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 30 });
  if (r.error || r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.error?.message ?? r.stderr.toString()}`);
  return performance.now() - start;
}

const devices = existsSync('/sys/class/infiniband') ? readdirSync('/sys/class/infiniband') : [];
const hasRdmaTool = spawnSync('rdma', ['-V'], { stdio: 'ignore' }).status === 0;
if (devices.length === 0 || !hasRdmaTool) {
  console.log(`ls with ${MRS.toLocaleString('en')} MRs: skipped (${devices.length === 0 ? 'no verbs device' : 'no rdma tool'}; run it in the lab: npm run lab -- 'node bench/ls-mr.mjs') (target ≤ ${TARGET}× rdma -j res show mr)`);
} else {
  // reg opens the device once per buffer: 10,000 MRs need more than the default 1,024 fds.
  const holder = spawn('sh', ['-c', `ulimit -n ${MRS * 2 + 1024} && exec "$@"`, 'sh', process.execPath, BIN, 'reg', '4K', '--backend', 'verbs', '--count', String(MRS), '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise((resolve, reject) => {
      let out = '';
      holder.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(); });
      holder.once('exit', (code) => reject(new Error(`rdmactl reg exited (${code}) before registering`)));
    });
    const rdma = [];
    const ls = [];
    timeCommand([process.execPath, BIN, 'ls', '--json']); // warm the page cache
    for (let i = 0; i < RUNS; i++) {
      rdma.push(timeCommand(['rdma', '-j', 'res', 'show', 'mr']));
      ls.push(timeCommand([process.execPath, BIN, 'ls', '--json']));
    }
    const ratio = median(ls) / median(rdma);
    console.log(`ls with ${MRS.toLocaleString('en')} MRs: rdmactl ls --json ${median(ls).toFixed(0)} ms, rdma -j res show mr ${median(rdma).toFixed(0)} ms, ratio ${ratio.toFixed(2)}× (target ≤ ${TARGET}×)${ratio <= TARGET ? '' : '  ← above target'}`);
  } finally {
    holder.kill('SIGTERM');
    await new Promise((resolve) => (holder.exitCode !== null ? resolve() : holder.once('exit', resolve)));
  }
}
