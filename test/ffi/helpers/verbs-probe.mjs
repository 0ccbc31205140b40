// Run inside an RDMA-capable machine (the Soft-RoCE lab) after a build: opens a device, queries it,
// registers 64 MiB and deregisters, printing VmPin around each step as one JSON line per step.
// Usage: node test/ffi/helpers/verbs-probe.mjs [device] [MiB] [access]
import { readFileSync } from 'node:fs';

const verbs = await import('../../../dist/engine/verbs/index.js');
const libc = await import('../../../dist/ffi/libc.js');

const [deviceArg, mibArg, accessArg] = process.argv.slice(2);
const length = Number(mibArg ?? 64) * 1024 * 1024;
const access = verbs.parseAccessFlags(accessArg ?? 'local-write,remote-write,remote-read');

function vmPinKb() {
  const m = /^VmPin:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : null;
}
const log = (step, extra = {}) => console.log(JSON.stringify({ step, vmPinKb: vmPinKb(), ...extra }, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)));

log('devices', { devices: verbs.listDevices() });
const addr = libc.mmap(length, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS);
const buffer = { addr, length, backing: 'anon', readOnly: false, path: null, close() { libc.munmap(addr, length); }, [Symbol.dispose]() { this.close(); } };
const t0 = performance.now();
const reg = verbs.openVerbsRegistration({ device: deviceArg || undefined, access, buffer, forkInit: false });
log('registered', { ms: Math.round(performance.now() - t0), details: reg.details, length: reg.length, addrMatches: reg.addr === addr });
reg.close();
log('deregistered', { closed: reg.closed });
reg.close();
buffer.close();
