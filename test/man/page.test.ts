// man/rdmactl.1 as a reader sees it on an 80-column terminal: rendered by man (or groff), no line
// wider than 80, no option name broken at a hyphen, a SYNOPSIS that is neither justified nor
// hyphenated and names every command, and no sentence dated to when it was written.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeProgram } from '../../src/program.js';
import type { Context } from '../../src/lib/context.js';
import { ROOT } from '../helpers/spawn.js';

const PAGE = join(ROOT, 'man', 'rdmactl.1');
const WIDTH = 80;

interface Rendered { text: string; warnings: string }

/** The page at WIDTH columns, as plain text (overstrike bold/underline removed); null when neither tool is here. */
function render(): Rendered | { missing: string } {
  const env = { ...process.env, MANWIDTH: String(WIDTH), MAN_KEEP_FORMATTING: '', LC_ALL: 'C.UTF-8' };
  const viaMan = spawnSync('man', ['-P', 'cat', '-l', PAGE], { encoding: 'utf8', env });
  if (!viaMan.error) return { text: viaMan.stdout.replace(/.\x08/g, ''), warnings: viaMan.stderr };
  const viaGroff = spawnSync('groff', ['-man', '-Tutf8', `-rLL=${WIDTH}n`, '-ww', PAGE], { encoding: 'utf8', env });
  if (!viaGroff.error) return { text: viaGroff.stdout.replace(/.\x08/g, ''), warnings: viaGroff.stderr };
  return { missing: 'neither man nor groff is installed (apt-get install man-db groff-base)' };
}

/** The lines of one section: from its heading to the next heading at the left margin. */
function section(lines: readonly string[], name: string): string[] {
  const start = lines.indexOf(name);
  if (start < 0) throw new Error(`no section ${name}`);
  const end = lines.findIndex((line, i) => i > start && /^[A-Z][A-Z ]+$/.test(line));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

// Sentences true only on the day they were written.
const DATED = /when this was written|(at|as of) the time of writing|\btoday\b|\bcurrently\b|\bnowadays\b|\bthese days\b|\bat present\b|\bas of (now|writing)\b/i;

describe('man/rdmactl.1 at 80 columns', () => {
  let rendered: Rendered | null = null;
  let missing: string | null = null;
  let lines: string[] = [];

  beforeAll(() => {
    const result = render();
    if ('missing' in result) {
      missing = result.missing;
      console.warn(`SKIPPING the rendered man page checks: ${missing}`);
      return;
    }
    rendered = result;
    lines = result.text.split('\n');
  });

  it('every source line that starts with a dot is a request the page means (text there would vanish)', () => {
    // roff drops a line such as "...; with" as an unknown request, without a warning.
    const REQUESTS = /^\.(\\"|(B|BR|BI|RB|RI|IR|I|TP|OP|PP|SH|SS|SY|YS|RS|RE|IP|TH|nf|fi|nr|nh|ad)( |$))/;
    const source = readFileSync(PAGE, 'utf8').split('\n');
    expect(source.filter((line) => line.startsWith('.') && !REQUESTS.test(line))).toEqual([]);
  });

  it('renders without a warning, and no line is wider than 80 columns', (ctx) => {
    if (!rendered) return ctx.skip(missing!);
    expect(rendered.warnings).toBe('');
    expect(lines.length).toBeGreaterThan(500);
    expect(lines.filter((line) => [...line].length > WIDTH)).toEqual([]);
  });

  it('no word is hyphenated at a line end, so no option name is broken', (ctx) => {
    if (!rendered) return ctx.skip(missing!);
    // U+2010 is the hyphen groff adds when it breaks a word; an option broken at its own '-' ends a
    // line with a fragment like --back-.
    expect(lines.filter((line) => line.endsWith('\u2010'))).toEqual([]);
    expect(lines.filter((line) => /(?:^|\s)-{1,2}[A-Za-z][\w-]*-$/.test(line))).toEqual([]);
  });

  it('SYNOPSIS: one entry per command, left-adjusted (no runs of spaces), each command of the program named', async (ctx) => {
    if (!rendered) return ctx.skip(missing!);
    const synopsis = section(lines, 'SYNOPSIS').filter((line) => line.trim() !== '');
    const entries = synopsis.filter((line) => /^ {7}rdmactl /.test(line));
    const entryLines = synopsis.slice(0, synopsis.findIndex((line) => /^ {7}Every command/.test(line)));
    expect(entryLines.length).toBeGreaterThan(entries.length); // long entries wrap onto indented lines
    for (const line of entryLines) {
      expect(line, 'an entry or its hanging continuation').toMatch(/^ {7}(rdmactl | {8,})/);
      expect(line.trim(), 'justified: a run of spaces between words').not.toMatch(/ {2}/);
    }
    const quiet = { write: (): void => {} };
    const ctxOfProgram: Context = { stdout: quiet, stderr: quiet, env: {}, stdoutIsTty: false, euid: 0 };
    const commands = (await makeProgram(ctxOfProgram)).commands.map((c) => c.name()).filter((name) => name !== 'help');
    const named = new Set(entries.map((line) => line.trim().split(' ')[1]));
    expect(commands.filter((name) => !named.has(name))).toEqual([]);
  });

  it('SYNOPSIS of doctor: --backend is optional under --size, with auto', (ctx) => {
    if (!rendered) return ctx.skip(missing!);
    const doctor = section(lines, 'SYNOPSIS').join(' ').replace(/\s+/g, ' ').match(/rdmactl doctor .*?(?= rdmactl )/)?.[0];
    expect(doctor).toMatch(/\[--size SIZE \[--backend auto\|uring\|mlock\|verbs\]/);
  });

  it('no sentence dated to when it was written, in the source or the rendered page', (ctx) => {
    const source = readFileSync(PAGE, 'utf8').split('\n').filter((line) => !line.startsWith('.\\"'));
    expect(source.filter((line) => DATED.test(line))).toEqual([]);
    if (!rendered) return ctx.skip(missing!);
    expect(rendered.text.replace(/\s+/g, ' ').match(new RegExp(`[^.]*(?:${DATED.source})[^.]*`, 'gi')) ?? []).toEqual([]);
  });
});
