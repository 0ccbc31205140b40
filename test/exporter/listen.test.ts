// --listen parsing and how listen failures become exit codes (pure: no socket).
import { describe, expect, it } from 'vitest';
import { DEFAULT_PORT, listenError, parseListen } from '../../src/exporter/run.js';
import { EXIT, UsageError } from '../../src/lib/errors.js';

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`listen ${code}`), { code });
}

describe('parseListen', () => {
  it('reads HOST:PORT, [IPv6]:PORT and :PORT (which stays on 127.0.0.1)', () => {
    expect(parseListen('127.0.0.1:10062')).toEqual({ host: '127.0.0.1', port: 10062 });
    expect(parseListen('0.0.0.0:9000')).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(parseListen('[::1]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(parseListen(':0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(DEFAULT_PORT).toBe(10062);
  });

  it('refuses what is not HOST:PORT with a usage error naming the value', () => {
    for (const bad of ['localhost', '10062', '127.0.0.1:', '127.0.0.1:65536', '::1:80', 'host:port', '']) {
      expect(() => parseListen(bad)).toThrow(UsageError);
      expect(() => parseListen(bad)).toThrow(`invalid --listen '${bad}'`);
    }
  });
});

describe('listenError', () => {
  it('maps in use → 1, not permitted → 4, unknown host → 2', () => {
    expect(listenError(errno('EADDRINUSE'), 'x:1').exitCode).toBe(EXIT.FAILURE);
    expect(listenError(errno('EACCES'), 'x:1').exitCode).toBe(EXIT.PERMISSION);
    expect(listenError(errno('EPERM'), 'x:1').exitCode).toBe(EXIT.PERMISSION);
    expect(listenError(errno('ENOTFOUND'), 'x:1').exitCode).toBe(EXIT.USAGE);
    expect(listenError(errno('EADDRNOTAVAIL'), '10.9.9.9:1').message).toBe('cannot listen on 10.9.9.9:1: no such address on this machine');
  });
});
