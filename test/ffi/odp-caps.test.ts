// ODP capability masks as words: every bit rdma-core's verbs.h names, and any other set bit as hex.
// The masks are literals (what a kernel hands ibv_query_device_ex), not built from our own constants,
// so a wrong value in the tables fails here as well as in verbs-layout.test.ts.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { capBitNames, odpGeneralCapNames, odpTransportCapNames, ODP_GENERAL_CAP_BITS, ODP_TRANSPORT_CAP_BITS } from '../../src/ffi/verbs/index.js';

describe('odpTransportCapNames (rc/uc/ud_odp_caps)', () => {
  it.each([
    [0x01, 'send'],
    [0x02, 'recv'],
    [0x04, 'write'],
    [0x08, 'read'],
    [0x10, 'atomic'],
    [0x20, 'srq-recv'],
    [0x40, 'flush'],
    [0x80, 'atomic-write'],
  ])('bit %s is %s', (mask, name) => {
    expect(odpTransportCapNames(mask)).toEqual([name]);
  });

  it('a 7.2 kernel rxe RC mask (0xff) is eight names, nothing dropped', () => {
    expect(odpTransportCapNames(0xff)).toEqual(['send', 'recv', 'write', 'read', 'atomic', 'srq-recv', 'flush', 'atomic-write']);
  });

  it('unknown bits print as hex, one word per bit, lowest first, after the named ones', () => {
    expect(odpTransportCapNames(0x100)).toEqual(['0x100']);
    expect(odpTransportCapNames(0x80000101)).toEqual(['send', '0x100', '0x80000000']);
    expect(odpTransportCapNames(0)).toEqual([]);
  });

  it('a 32-bit mask read as a negative int32 still decodes bit 31', () => {
    expect(odpTransportCapNames(-0x80000000)).toEqual(['0x80000000']);
  });
});

describe('odpGeneralCapNames (general_caps, 64 bits)', () => {
  it.each([
    [1n, 'odp'],
    [2n, 'implicit'],
  ])('bit %s is %s', (mask, name) => {
    expect(odpGeneralCapNames(mask)).toEqual([name]);
  });

  it('bits the header does not name, up to bit 63, print as hex', () => {
    expect(odpGeneralCapNames(0x3n | 0x4n | (1n << 40n) | (1n << 63n))).toEqual(['odp', 'implicit', '0x4', '0x10000000000', '0x8000000000000000']);
    expect(odpGeneralCapNames(0n)).toEqual([]);
  });

  it('the general and transport tables are independent (bit 2 is write for a transport only)', () => {
    expect(odpGeneralCapNames(4n)).toEqual(['0x4']);
    expect(capBitNames(4n, ODP_TRANSPORT_CAP_BITS)).toEqual(['write']);
  });
});

describe('schema/devices.json', () => {
  interface CapsSchema { anyOf: [{ items: { anyOf: [{ enum: string[] }, { pattern: string }] } }, unknown] }
  const schema = JSON.parse(readFileSync(new URL('../../schema/devices.json', import.meta.url), 'utf8')) as {
    definitions: { device: { properties: Record<string, CapsSchema> } };
  };
  const device = schema.definitions.device.properties;
  const ajv = new Ajv({ strict: true, allowUnionTypes: true }).addSchema(schema);
  const validate = ajv.compile({ $ref: 'urn:rdmactl:schema:devices:1#/definitions/device' });

  it('lists exactly the words the decoder prints, per mask', () => {
    expect(device['odpGeneralCaps']!.anyOf[0].items.anyOf[0].enum).toEqual(ODP_GENERAL_CAP_BITS.map((b) => b.name));
    for (const key of ['odpRcCaps', 'odpUcCaps', 'odpUdCaps']) expect(device[key]!.anyOf[0].items.anyOf[0].enum, key).toEqual(ODP_TRANSPORT_CAP_BITS.map((b) => b.name));
  });

  it('accepts every named bit and unknown ones as hex, and refuses a word no bit has', () => {
    const record = { odpGeneralCaps: odpGeneralCapNames(0x3n | (1n << 63n)), odpRcCaps: odpTransportCapNames(0x1ff), odpUcCaps: [], odpUdCaps: null };
    expect(validate(record), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ odpRcCaps: ['flushes'] })).toBe(false);
    expect(validate({ odpRcCaps: ['0x3'] })).toBe(false);
  });
});
