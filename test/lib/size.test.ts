import { describe, expect, it } from 'vitest';
import { formatBytes, parseDuration, parseSize } from '../../src/lib/size.js';
import { UsageError } from '../../src/lib/errors.js';

describe('parseSize', () => {
  it.each([
    ['4096', 4096], ['64K', 65536], ['64KiB', 65536], ['64kb', 65536], ['1.5G', 1610612736],
    ['2MB', 2097152], ['2 MiB', 2097152], ['1T', 1024 ** 4], ['.5K', 512],
  ])('%s → %d bytes (every suffix is a power of 1024)', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['0', '0K', '-1', '-64K', 'abc', '64X', '', '1.3', '99999999999999999999', '1e3', '64 K B', '0x10'])('rejects %j with a UsageError', (text) => {
    expect(() => parseSize(text)).toThrow(UsageError);
  });

  it('names the bad input and the accepted form in one line', () => {
    expect(() => parseSize('64X')).toThrow(/invalid size '64X': unknown unit 'X'/);
    expect(() => parseSize('99999999999T')).toThrow(/too large/);
  });
});

describe('parseDuration', () => {
  it.each([['500ms', 500], ['10s', 10_000], ['10', 10_000], ['2m', 120_000], ['1h', 3_600_000]])('%s → %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
  it.each(['0', '-1s', '10x', 's', '999999h'])('rejects %j', (text) => {
    expect(() => parseDuration(text)).toThrow(UsageError);
  });
});

describe('formatBytes', () => {
  it('formats with binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(65536)).toBe('64 KiB');
    expect(formatBytes(67108864)).toBe('64 MiB');
    expect(formatBytes(1536)).toBe('1.50 KiB');
  });
});
