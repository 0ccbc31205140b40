// engine/ringCharge.ts asks the kernel whether an io_uring ring's own pages count against
// RLIMIT_MEMLOCK. Checked against the test's own measurement (a registration that fits exactly
// unless the ring is charged, as uid 65534), and that the probe leaves this process as it found it.
import { describe, expect, it } from 'vitest';
import { RLIMIT_MEMLOCK, capget, prlimit } from '../../src/ffi/libc.js';
import { ringChargeProbe } from '../../src/engine/ringCharge.js';
import { builtOrThrow, measuredRingsCharged, unprivilegedUnavailable } from '../helpers/spawn.js';

const cannot = unprivilegedUnavailable();

describe('the io_uring ring-charge probe', () => {
  it('puts back RLIMIT_MEMLOCK and the thread\'s capabilities', () => {
    const capsBefore = capget();
    const limitBefore = prlimit(0, RLIMIT_MEMLOCK);
    const probe = ringChargeProbe();
    expect(probe.evidence).toMatch(/io_uring_setup/);
    expect(capget()).toEqual(capsBefore);
    expect(prlimit(0, RLIMIT_MEMLOCK)).toEqual(limitBefore);
  });

  it.skipIf(cannot !== null)(`says what the kernel does to an unprivileged user${cannot ? ` (skipped: ${cannot})` : ''}`, () => {
    builtOrThrow();
    const measured = measuredRingsCharged();
    const probe = ringChargeProbe();
    console.log(`ring charge: probe ${probe.charged} (${probe.evidence}); measured ${measured}`);
    expect(probe.charged).toBe(measured);
  }, 60_000);
});
