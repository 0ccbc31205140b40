// The escaping of strings other users choose (comm, cgroup names, user names, file names): what a
// terminal or a line-based reader would act on becomes \xNN; everything else stays as it is.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { escapeJson, escapeRaw, escapeText, shellWord } from '../../src/lib/escape.js';

const hex = (byte: number): string => `\\x${byte.toString(16).padStart(2, '0')}`;

describe('escapeText', () => {
  it('escapes every C0 control and DEL as \\xNN', () => {
    for (let byte = 0; byte < 0x20; byte++) expect(escapeText(`a${String.fromCharCode(byte)}b`)).toBe(`a${hex(byte)}b`);
    expect(escapeText('a\x7fb')).toBe('a\\x7fb');
  });

  it('escapes the C1 controls (U+0080–U+009F) as the bytes of their UTF-8 encoding', () => {
    for (let cp = 0x80; cp <= 0x9f; cp++) expect(escapeText(String.fromCharCode(cp))).toBe(`\\xc2${hex(cp)}`);
  });

  it('a terminal title, bell and clear-screen sequence comes out as one inert line', () => {
    const hostile = 'x\x1b]0;PWNED\x07\x1b[2J';
    expect(escapeText(hostile)).toBe('x\\x1b]0;PWNED\\x07\\x1b[2J');
    expect(escapeText('\x1bP+q\x1b\\')).toBe('\\x1bP+q\\x1b\\');
    expect(escapeText('\u009b2J')).toBe('\\xc2\\x9b2J');
  });

  it('a newline (a forged row in a pipe), carriage return and tab are escaped', () => {
    expect(escapeText('evil\n4242 root fake 1 GiB')).toBe('evil\\x0a4242 root fake 1 GiB');
    expect(escapeText('a\rb\tc')).toBe('a\\x0db\\x09c');
  });

  it('escapes the bidi controls and the line/paragraph separators', () => {
    expect(escapeText('a\u202eb')).toBe('a\\xe2\\x80\\xaeb');
    for (const cp of [0x061c, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069]) {
      const ch = String.fromCodePoint(cp);
      expect(escapeText(ch)).toBe([...Buffer.from(ch, 'utf8')].map(hex).join(''));
    }
  });

  it('escapes lone surrogates (no UTF-8 exists for them) but keeps surrogate pairs', () => {
    expect(escapeText('a\ud800b')).toBe('a\\xed\\xa0\\x80b');
    expect(escapeText('\udfff')).toBe('\\xed\\xbf\\xbf');
    expect(escapeText('ok \u{1f600}')).toBe('ok \u{1f600}');
  });

  it('keeps printable text, valid non-ASCII and the U+FFFD that invalid UTF-8 became', () => {
    for (const text of ['kworker/0:1-events', 'café', '中文名字', 'naïve ünïcödé', 'a b', '\ufffd\ufffd', 'C:\\temp', '']) {
      expect(escapeText(text)).toBe(text);
    }
  });

  it('leaves backslashes alone (as ps does), so escaping twice changes nothing', () => {
    expect(escapeText('x\\x1b')).toBe('x\\x1b');
    const once = escapeText('x\x1b]0;PWNED\x07\u202e\n');
    expect(escapeText(once)).toBe(once);
  });

  it("with 'lines' keeps newlines and nothing else (prose of several lines)", () => {
    expect(escapeText('one\ntwo\x1b[2J\r\t\u009b', 'lines')).toBe('one\ntwo\\x1b[2J\\x0d\\x09\\xc2\\x9b');
  });
});

describe('escapeRaw (one rule with escapeText)', () => {
  it('escapes what escapeText escapes, plus blanks, backslash and non-ASCII bytes', () => {
    expect(escapeRaw('x\x1b]0;PWNED\x07\x1b[2J')).toBe('x\\x1b]0;PWNED\\x07\\x1b[2J');
    expect(escapeRaw('a b\\c é')).toBe('a\\x20b\\x5cc\\x20\\xc3\\xa9');
    expect(escapeRaw('a\ud800')).toBe('a\\xed\\xa0\\x80');
    expect(escapeRaw('\u202e\u009b')).toBe('\\xe2\\x80\\xae\\xc2\\x9b');
  });

  it('never leaves a byte a terminal or a field splitter would act on', () => {
    let all = '';
    for (let cp = 0; cp < 0x3000; cp++) all += String.fromCharCode(cp);
    expect(escapeRaw(all)).toMatch(/^[\x21-\x7e]*$/);
  });
});

describe('escapeJson', () => {
  it('writes DEL, C1 and bidi controls as \\u escapes: same value to a parser, inert on a terminal', () => {
    const value = { comm: 'x\x1b]0;PWNED\x07\u009b2J\u202e\x7f\n' };
    const text = escapeJson(JSON.stringify(value));
    expect(text).toBe('{"comm":"x\\u001b]0;PWNED\\u0007\\u009b2J\\u202e\\u007f\\n"}');
    expect(JSON.parse(text)).toEqual(value);
    expect(text).toMatch(/^[\x20-\x7e]*$/);
  });
});

describe('shellWord (names pasted into a root shell by doctor fixes)', () => {
  it('leaves plain unit names and paths bare', () => {
    expect(shellWord('x.service')).toBe('x.service');
    expect(shellWord('/sys/fs/cgroup/memory/a/b/memory.limit_in_bytes')).toBe('/sys/fs/cgroup/memory/a/b/memory.limit_in_bytes');
  });

  it('a real sh reads every hostile name back as one word, running nothing', () => {
    const hostile = ["a b;$(touch /tmp/pwn).service", "it's`id`", '', '-rf', "x'\n'y", '$HOME', '*'];
    for (const name of hostile) {
      const r = spawnSync('/bin/sh', ['-c', `printf '%s\\0' ${shellWord(name)}`], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`${name}\0`);
    }
  });
});
