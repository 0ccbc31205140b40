import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseComm, readComm } from '../../src/proc/comm.js';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/proc/${name}`, import.meta.url), 'utf8');

describe('parseComm', () => {
  it('drops only the kernel\'s final newline', () => {
    expect(parseComm(fixture('comm-with-space.txt'))).toBe('tmux: server');
    expect(parseComm(fixture('comm-with-newline.txt'))).toBe('line\none'); // PR_SET_NAME allows any byte
  });
});

describe('readComm', () => {
  it('names a live process as /proc/PID/status Name does, and null once it is gone', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const pid = child.pid!;
    const name = /^Name:\t(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1];
    expect(readComm(pid)).toBe(name);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(readComm(pid)).toBeNull();
  });
});
